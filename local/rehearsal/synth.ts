/**
 * Synthesizes a team's stack the way `npm run synth` does (the CDK CLI running infra/app.ts,
 * esbuild bundling, cdk-nag and the deploy rules), into a cloud assembly that is reused while
 * nothing it was built from changed (sources, lock file, the team config).
 */
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MAX_BODY_BYTES } from '../../functions/lambda-environment';
import { moduleToolFiles, stackNameFor } from '../../functions/team-config';
import type { AgentRegistry } from '../../core/model';
import { LIMIT_CEILINGS } from '../../core/limits';

export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const REHEARSAL_DIR = join(PROJECT_ROOT, '.rehearsal');
export const REHEARSAL_TEAM = 'rehearsal';
/** With `rehearse up --jwt`: the rehearsal team's API takes ID tokens of this pool's app client (user-pool.ts signs them). */
export const REHEARSAL_USER_POOL = { poolId: 'us-east-1_Rehearsal', clientId: 'rehearsal0app0client0000001' };
const SOURCE_DIRS = ['core', 'adapters', 'functions', 'infra'];

/** The team config a rehearsal uses without --team: inline script agents, every maximum at the ceiling. */
export interface RehearsalTeamOptions {
  aggregators?: string;
  jwt?: boolean;
  lambdaAgents?: Record<string, string>;
  /**
   * More agents of the registry, as a team config writes them: a `module` tool's path is relative
   * to the config, which synthesize() writes to .rehearsal/<work>/teams/ (so `../../../<path from
   * the project root>`).
   */
  agents?: Record<string, unknown>;
}

/** Where a rehearsal team config is written, relative to the project root: module tool paths start from here. */
export const REHEARSAL_CONFIG_DEPTH = '../../../';

export function rehearsalTeamConfig(options: RehearsalTeamOptions = {}): Record<string, unknown> {
  // `lambdaAgents` (agent name: function name) are `lambda` agents of the registry, hosted by the
  // rehearsal outside the stack (RehearsalOptions.agentFunctions); the step worker is granted them.
  const lambdas = Object.fromEntries(Object.entries(options.lambdaAgents ?? {}).map(([agent, functionName]) => [agent, { kind: 'lambda', functionName }]));
  return {
    team: REHEARSAL_TEAM,
    // A registry needs one agent; scenarios bring their own inline script agents.
    agents: { RehearsalEcho: { kind: 'script', responses: [{ next_action: 'final_response', content: '$input' }] }, ...lambdas, ...options.agents },
    limitMaxima: { ...LIMIT_CEILINGS },
    allowInlineScriptAgents: true,
    // As many as a default account lets the step-worker reserve for both lanes (600 + 300 of its
    // 1,000, keeping 100 unreserved); Lambda's SQS event source itself allows 1,000.
    workerMaxConcurrency: 600,
    maxBodyBytes: Math.max(DEFAULT_MAX_BODY_BYTES, 10 * 1024 * 1024),
    ...(options.aggregators ? { aggregators: options.aggregators } : {}),
    ...(options.jwt
      ? { auth: { type: 'jwt', issuer: `https://cognito-idp.us-east-1.amazonaws.com/${REHEARSAL_USER_POOL.poolId}`, audience: REHEARSAL_USER_POOL.clientId } }
      : {}),
  };
}

export interface Assembly {
  dir: string;
  stackName: string;
  /** Whether this call synthesized it (false: an up-to-date assembly was reused). */
  synthesized: boolean;
}

function newestSourceMtime(): number {
  let newest = statSync(join(PROJECT_ROOT, 'package-lock.json')).mtimeMs;
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else newest = Math.max(newest, statSync(path).mtimeMs);
    }
  };
  for (const dir of SOURCE_DIRS) walk(join(PROJECT_ROOT, dir));
  return newest;
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd: PROJECT_ROOT, maxBuffer: 64 * 1024 * 1024 }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`cdk synth failed:\n${stderr || error.message}`, { cause: error }));
      else resolve();
    });
  });
}

/**
 * The team's assembly: `team` from infra/teams, or (no team) the rehearsal team config, with
 * `aggregators` (a module path) bundled into the functions.
 */
export async function synthesize(options: RehearsalTeamOptions & { team?: string; onProgress?(what: string): void } = {}): Promise<Assembly> {
  const team = options.team ?? REHEARSAL_TEAM;
  const stackName = stackNameFor(team);
  const config = options.team ? undefined : rehearsalTeamConfig(options);
  // The team modules bundled in (outside the source folders): a change to one synthesizes again.
  const modules = [options.aggregators, ...Object.values(moduleToolFiles((config?.agents ?? {}) as AgentRegistry, join(REHEARSAL_DIR, 'work', 'teams'), 'rehearsal'))];
  const aggregatorsStamp = modules.map((file) => (file && existsSync(file) ? statSync(file).mtimeMs : 0));
  const key = createHash('sha256')
    .update(JSON.stringify({ team, config, aggregatorsStamp }))
    .digest('hex')
    .slice(0, 12);
  const stamp = `${newestSourceMtime()}:${key}`;
  const dir = join(REHEARSAL_DIR, `cdk.out-${team}-${key}`);
  const stampFile = join(dir, 'rehearsal-stamp');
  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) return { dir, stackName, synthesized: false };

  options.onProgress?.('synthesizing the stack with cdk synth (the first time takes about a minute; later runs reuse it until the code changes)...');
  mkdirSync(REHEARSAL_DIR, { recursive: true });
  const work = join(REHEARSAL_DIR, `tmp-${randomUUID()}`);
  const args = ['synth', '--quiet', '-c', `team=${team}`, '-o', work];
  if (config) {
    const teamsDir = join(work, 'teams');
    mkdirSync(teamsDir, { recursive: true });
    writeFileSync(join(teamsDir, `${team}.json`), JSON.stringify(config, null, 2));
    args.push('-c', `teamsDir=${teamsDir}`);
  }
  try {
    await run(join(PROJECT_ROOT, 'node_modules', '.bin', 'cdk'), args);
    writeFileSync(join(work, 'rehearsal-stamp'), stamp);
    rmSync(dir, { recursive: true, force: true });
    try {
      renameSync(work, dir);
    } catch (error) {
      // Another process put an assembly there first: use that one.
      if (!existsSync(stampFile)) throw error;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { dir, stackName, synthesized: true };
}

/** The stack's account and region as synthesized (env-agnostic stacks get the local defaults). */
export function assemblyEnvironment(dir: string, stackName: string): { region: string; account: string; partition: string } {
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  const environment = String(manifest.artifacts?.[stackName]?.environment ?? '');
  const [, account, region] = /^aws:\/\/([^/]+)\/(.+)$/.exec(environment) ?? [];
  return {
    account: account && account !== 'unknown-account' ? account : '000000000000',
    region: region && region !== 'unknown-region' ? region : 'us-east-1',
    partition: 'aws',
  };
}
