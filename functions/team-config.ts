/**
 * A team's deployment settings (`infra/teams/<team>.json`), validated with zod. Errors name the
 * file and the offending field, like scenario errors do.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ScenarioError } from '../core/errors';
import { toolsOf } from '../core/agent-kinds';
import type { AgentRegistry, Limits } from '../core/model';
import { limitsSchema, teamLimitMaxima } from '../core/limits';
import { parseScenario } from '../core/scenario';
import type { AgentPolicy } from '../core/run-request';
import { DEFAULT_MAX_BODY_BYTES, STACK_TOOL_VALUES } from './lambda-environment';
import { TOOL_VALUE_MODES } from '../core/tools';
import { continueLaneConcurrency } from '../core/step-lanes';
import { LAMBDA_CONCURRENCY, LAMBDA_MEMORY_MB } from './function-memory';
import { BRANCH_EVENT_MODES, SEND_ALL_EVENTS } from '../core/event-policy';

/** The teams' configs live with the infrastructure that deploys them. */
export const TEAMS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'infra', 'teams');

/** A team name ends up in resource names (stack, state machine, bus, dashboard): keep it short and plain. */
const TEAM_NAME = /^[a-z][a-z0-9-]{0,30}[a-z0-9]$/;

const positiveInt = z.number().int('must be an integer').positive('must be positive');
// The maxima use the same shape and rules as a scenario's limits (never past a ceiling); a limit the
// team does not name is capped by the table's team maximum (core/limits.ts).
const limitMaximaSchema = limitsSchema.default({}).transform((named) => teamLimitMaxima(named));

// The REST API's JWT authorizer is a Cognito user pool authorizer, so the issuer must be a pool.
const COGNITO_ISSUER = /^https:\/\/cognito-idp\.([a-z0-9-]+)\.amazonaws\.com\/([a-z0-9-]+_[A-Za-z0-9]+)$/;

const authSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('iam') }).strict(),
  z
    .object({
      type: z.literal('jwt'),
      issuer: z
        .string()
        .regex(COGNITO_ISSUER, 'must be a Cognito user pool issuer: https://cognito-idp.<region>.amazonaws.com/<userPoolId>'),
      audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    })
    .strict(),
]);

const teamConfigSchema = z
  .object({
    team: z.string().regex(TEAM_NAME, 'must be 2-32 lowercase letters, digits or hyphens, starting with a letter'),
    account: z.string().regex(/^\d{12}$/, 'must be a 12-digit AWS account id').optional(),
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region such as eu-west-1').optional(),
    // Agent definitions are checked by the scenario rules below (one shape for both).
    agents: z.record(z.string().min(1), z.unknown()),
    limitMaxima: limitMaximaSchema,
    allowInlineScriptAgents: z.boolean().default(false),
    // Each caller reads and cancels only the runs it started, unless the team shares them.
    shareRuns: z.boolean().default(false),
    // Lambda's SQS event source accepts 2..1000.
    workerMaxConcurrency: z.number().int('must be an integer').min(2, 'must be ≥ 2').max(1000, 'must be ≤ 1000').default(10),
    // The step-worker's reserved concurrency: at least both lanes' event source maxima (the
    // default), so the lanes are never throttled by the account's other functions; false reserves
    // nothing (new accounts with reduced concurrency cannot reserve any).
    workerReservedConcurrency: z.union([z.number().int('must be an integer').min(2, 'must be ≥ 2').max(10_000, 'must be ≤ 10000'), z.literal(false)]).optional(),
    // The Lambda concurrency quota of the account the stack deploys to (AWS's default unless
    // raised): what the step-worker may reserve is checked against it, as the deploy would be.
    accountConcurrency: z.number().int('must be an integer').min(1, 'must be ≥ 1').max(1_000_000, 'must be ≤ 1000000').default(LAMBDA_CONCURRENCY.accountDefault),
    // The step-worker's memory (MB): the measured default (functions/function-memory.ts) unless set.
    workerMemoryMb: z
      .number()
      .int('must be an integer')
      .min(LAMBDA_MEMORY_MB.min, `must be ≥ ${LAMBDA_MEMORY_MB.min} (Lambda's minimum)`)
      .max(LAMBDA_MEMORY_MB.max, `must be ≤ ${LAMBDA_MEMORY_MB.max} (Lambda's maximum)`)
      .optional(),
    // Per-branch lifecycle events to the team bus (each entry is billed): all, the branch ends
    // only, or none, for a sampled fraction of the branches. Run-level events always go.
    events: z
      .object({
        branches: z.enum(BRANCH_EVENT_MODES).default(SEND_ALL_EVENTS.branches),
        sample: z.number().gt(0, 'must be > 0 (use branches: "off" to send none)').max(1, 'must be ≤ 1').default(SEND_ALL_EVENTS.sample),
      })
      .strict()
      .default(SEND_ALL_EVENTS),
    // The fan-out state machine's logs: errors only and no execution data (task tokens, inputs) by default.
    stateMachineLogging: z
      .object({
        level: z.enum(['OFF', 'FATAL', 'ERROR', 'ALL']).default('ERROR'),
        includeExecutionData: z.boolean().default(false),
      })
      .strict()
      .default({ level: 'ERROR', includeExecutionData: false }),
    alarmEmail: z.email('must be an email address').optional(),
    auth: authSchema.default({ type: 'iam' }),
    runTtlDays: positiveInt.optional(),
    apiThrottle: z
      .object({ rateLimit: z.number().positive('must be positive'), burstLimit: positiveInt })
      .strict()
      .optional(),
    // 'customer-managed' creates a KMS key (with rotation) for the table.
    tableEncryption: z.enum(['aws-managed', 'customer-managed']).default('aws-managed'),
    // The api handler answers 413 above this (API Gateway's own cap is 10 MB).
    // API keys of openai agents, by the name agents give as apiKeyEnv: read in AWS from Secrets
    // Manager or SSM Parameter Store (the step-worker is granted exactly these), never from a request.
    secrets: z
      .record(
        z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a variable name such as OPENAI_API_KEY'),
        z.union([
          z.object({ secretsManager: z.string().min(1) }).strict(),
          z.object({ ssmParameter: z.string().min(1) }).strict(),
        ]),
      )
      .default({}),
    // A module of registered aggregators (path relative to the config file), bundled into the functions.
    aggregators: z.string().min(1).optional(),
    // How ToolCalled events carry tool arguments and outputs: references only (the default: no tool
    // content on the team bus), or inline up to 1 KB each (core/tools.ts).
    toolValues: z.enum(TOOL_VALUE_MODES).default(STACK_TOOL_VALUES),
    maxBodyBytes: positiveInt.max(10 * 1024 * 1024, 'must be ≤ 10 MiB (the API Gateway cap)').default(DEFAULT_MAX_BODY_BYTES),
  })
  .strict();

export type TeamAuth = z.infer<typeof authSchema>;

export interface TeamConfig extends Omit<z.infer<typeof teamConfigSchema>, 'agents' | 'limitMaxima'> {
  agents: AgentRegistry;
  /** Every limit's maximum on this stack (the team's, or the table's team cap). */
  limitMaxima: Limits;
  /**
   * The modules of the registry's `module` tools: the path as the definitions write it (relative
   * to the config file) to the file, bundled into the step worker at synth (loadTeamConfig fills it).
   */
  toolModules?: Record<string, string>;
}

export class TeamConfigError extends Error {
  constructor(
    readonly file: string,
    readonly field: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${field}: ${detail}`, options);
    this.name = 'TeamConfigError';
  }
}

/** Validates a parsed team document; `file` names it in errors. */
export function parseTeamConfig(document: unknown, file: string): TeamConfig {
  const parsed = teamConfigSchema.safeParse(document);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      const field = [path, issue.keys[0]].filter(Boolean).join('.');
      throw new TeamConfigError(file, field, `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`, {
        cause: parsed.error,
      });
    }
    throw new TeamConfigError(file, path || '(root)', issue.message, { cause: parsed.error });
  }
  const config = parsed.data;
  const lanes = workerEventSourceConcurrency(config);
  if (typeof config.workerReservedConcurrency === 'number' && config.workerReservedConcurrency < lanes) {
    throw new TeamConfigError(
      file,
      'workerReservedConcurrency',
      `must be ≥ ${lanes}, the step-worker's event sources' maxima (workerMaxConcurrency ${config.workerMaxConcurrency} + its continue lane), or false`,
    );
  }
  // CloudFormation refuses a reservation that leaves the account less than its unreserved minimum.
  const reserved = workerReservedConcurrency(config);
  const reservable = config.accountConcurrency - LAMBDA_CONCURRENCY.minUnreserved;
  if (reserved !== undefined && reserved > reservable) {
    const field = typeof config.workerReservedConcurrency === 'number' ? 'workerReservedConcurrency' : 'workerMaxConcurrency';
    throw new TeamConfigError(
      file,
      field,
      `the step-worker would reserve ${reserved} of the account's concurrency (accountConcurrency ${config.accountConcurrency}), over the ${reservable} Lambda lets a function reserve ` +
        `(it keeps ${LAMBDA_CONCURRENCY.minUnreserved} unreserved): lower workerMaxConcurrency, set workerReservedConcurrency to false, or set accountConcurrency to the account's quota`,
    );
  }
  const names = Object.keys(config.agents);
  if (names.length === 0) throw new TeamConfigError(file, 'agents', 'the registry needs at least one agent');
  for (const [name, agent] of Object.entries(config.agents)) {
    if ((agent as { kind?: unknown } | null)?.kind === 'module') {
      throw new TeamConfigError(file, `agents.${name}.kind`, 'module agents run only locally (run and dev); in AWS use lambda, bedrock, openai or http');
    }
  }
  try {
    // Same rules as a scenario's agents: kinds, required fields per kind, `allowed` names registry agents.
    const scenario = parseScenario({ name: config.team, entry: names[0], request: null, agents: config.agents }, file);
    return { ...config, agents: scenario.agents };
  } catch (error) {
    if (error instanceof ScenarioError) {
      const field = error.field ?? 'agents';
      const detail = error.message.replace(`${file}: `, '').replace(`${field}: `, '');
      throw new TeamConfigError(file, field, detail, { cause: error });
    }
    throw error;
  }
}

/** What a run request to the team's stack may bring: the registry's agents, inline script agents where allowed. */
export function agentPolicyOf(config: Pick<TeamConfig, 'agents' | 'allowInlineScriptAgents'>): AgentPolicy {
  return { registry: config.agents, inline: config.allowInlineScriptAgents ? 'script' : 'none' };
}

/** Both step lanes' event source maxima together (core/step-lanes.ts). */
export function workerEventSourceConcurrency(config: Pick<TeamConfig, 'workerMaxConcurrency'>): number {
  return config.workerMaxConcurrency + continueLaneConcurrency(config.workerMaxConcurrency);
}

/** The step-worker's reserved concurrency (undefined: none reserved). */
export function workerReservedConcurrency(config: Pick<TeamConfig, 'workerMaxConcurrency' | 'workerReservedConcurrency'>): number | undefined {
  if (config.workerReservedConcurrency === false) return undefined;
  return config.workerReservedConcurrency ?? workerEventSourceConcurrency(config);
}

/** Team names that have a config file. */
/** The CloudFormation stack of a team (`cdk deploy -c team=<team>` creates it; `--stack <team>` reads its outputs). */
export function stackNameFor(team: string): string {
  return `branch-spawner-${team}`;
}

export function knownTeams(dir = TEAMS_DIR): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => basename(f, '.json'))
    .sort();
}

/** Loads `<dir>/<team>.json`; an unknown team is an error that lists the known ones. */
export function loadTeamConfig(team: string, dir = TEAMS_DIR): TeamConfig {
  const known = knownTeams(dir);
  if (!known.includes(team)) {
    const file = displayPath(join(dir, `${team}.json`));
    throw new TeamConfigError(file, 'team', `unknown team "${team}": no such file (known teams: ${known.join(', ') || 'none'})`);
  }
  const file = join(dir, `${team}.json`);
  const shown = displayPath(file);
  let document: unknown;
  try {
    document = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new TeamConfigError(shown, '(root)', `not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  const config = parseTeamConfig(document, shown);
  if (config.aggregators) {
    config.aggregators = resolve(dir, config.aggregators);
    if (!existsSync(config.aggregators)) {
      throw new TeamConfigError(shown, 'aggregators', `no module ${displayPath(config.aggregators)}`);
    }
  }
  if (config.team !== team) {
    throw new TeamConfigError(shown, 'team', `must be "${team}" (the file name), got "${config.team}"`);
  }
  const toolModules = moduleToolFiles(config.agents, dir, shown);
  return Object.keys(toolModules).length ? { ...config, toolModules } : config;
}

/** The files of the registry's `module` tools, by the path the definitions write (relative to `dir`); each must exist. */
export function moduleToolFiles(agents: AgentRegistry, dir: string, shown: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const [name, agent] of Object.entries(agents)) {
    for (const [i, tool] of toolsOf(agent).entries()) {
      if (tool.kind !== 'module') continue;
      const file = resolve(dir, tool.module);
      if (!existsSync(file)) throw new TeamConfigError(shown, `agents.${name}.tools.${i}.module`, `no module ${displayPath(file)}`);
      files[tool.module] = file;
    }
  }
  return files;
}

function displayPath(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel.startsWith('..') ? file : rel;
}
