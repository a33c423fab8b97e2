/** `branch-spawner` — runs scenarios on the embedded engines. */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { readFileSync } from 'node:fs';
import { DataFolderError, describeThrown, diskRefusal, ForbiddenError, InUseError, LimitExceededError, PayloadTooLargeError, RemoteApiError, ScenarioError, ValidationError } from '../core/errors';
import { CHAOS_FAULTS, parseChaos } from './chaos';
import { callbackCommand, cancelCommand, eventsCommand, runsCommand, showCommand, treeCommand } from './inspect-commands';
import { TOKEN_ENV, type RemoteTarget } from './remote/api-client';
import { gcCommand } from './gc-command';
import { redriveCommand } from './redrive-command';
import { resumeCommand } from './resume-command';
import { runDevCommand } from './dev-server';
import { runScenario, type RunCommandOptions } from './run-command';

interface RemoteFlags {
  api?: string;
  stack?: string;
  token?: string;
  region?: string;
  profile?: string;
}

const targetOf = (opts: RemoteFlags & { api: string }): RemoteTarget => ({ api: opts.api, token: opts.token, region: opts.region, profile: opts.profile });

/** The API of `--api <url>`, or of `--stack <team>` (read from the stack's outputs); undefined for neither. */
async function apiOf(opts: RemoteFlags): Promise<string | undefined> {
  if (opts.stack === undefined) return opts.api;
  if (opts.api) throw new ValidationError('give --api <url> or --stack <team>, not both', '--stack');
  const { apiUrlOfStack } = await import('./remote/stack-target');
  return apiUrlOfStack(opts.stack, opts);
}

const STACK_HELP = "a team's deployed stack: its API URL is read from the stack's ApiUrl output (CloudFormation, with your AWS credentials)";

export interface MainOptions {
  /** Handle Ctrl-C (SIGINT) for `run`: the bin sets it; in-process callers leave the signal alone. */
  signals?: boolean;
}

const CHAOS_HELP = `inject faults, comma-separated: ${CHAOS_FAULTS}`;

/** An integer option's value (commander names the option when this throws). */
function integerOption(value: string): number {
  if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError('It must be an integer.');
  return Number(value);
}

/** The package's version, as `--version` prints it. */
export function version(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

export async function main(
  argv: string[],
  io: { out: NodeJS.WritableStream; err: NodeJS.WritableStream } = { out: process.stdout, err: process.stderr },
  mainOptions: MainOptions = {},
): Promise<number> {
  let exitCode = 0;
  const program = new Command()
    .name('branch-spawner')
    .version(version(), '-V, --version', 'print the version and exit')
    .description('Agent-decided, durable fan-out/fan-in of agent branch trees, run locally on embedded engines.')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out.write(s), writeErr: (s) => io.err.write(s) });

  program
    .command('run')
    .description('run a scenario file (YAML or JSON) and print the result; exit 0 COMPLETED, 1 FAILED/CANCELLED, 2 invalid scenario')
    .argument('<scenario>', 'path to the scenario file')
    .option('--json', 'print exactly one JSON document (run, metrics, branches) and no progress')
    .option('--trace <file>', 'append every lifecycle event to this JSONL file')
    .option('--chaos <faults>', CHAOS_HELP)
    .option('--seed <n>', 'seed for --chaos (an integer)', integerOption, 1)
    .option('--data <dir>', 'keep the store and queues on disk in this folder (a journal, replayed on open), for resume')
    .option('--fsync', 'with --data: flush every journal write to the disk (survives an OS crash too, not only a killed process; slower)')
    .option('--keep-poison', 'with --data: leave dead-lettered steps in the DLQ for redrive instead of failing their branches')
    .option('--engines', 'run on dynalite + fauxqs (the AWS-API engines) instead of the in-memory store and queues')
    .option('--hooks <module>', 'a TypeScript/JavaScript module exporting lifecycle hooks (onRunStarted, onBranchCompleted, ...; docs/agents.md)')
    .option('--rehearse', 'run it through the stack `cdk deploy` would create (synthesized template, bundled functions, IAM)')
    .option('--team <name>', 'with --rehearse or --api: the team of infra/teams/<name>.json, whose registry agents the scenario may name without defining them')
    .option('--api <url>', "start the run on a team's deployed API (the stack's ApiUrl output), signed with your AWS credentials")
    .option('--stack <team>', `as --api, with ${STACK_HELP}`)
    .option('--token <jwt>', `with --api: a Cognito ID token instead of SigV4 (env ${TOKEN_ENV})`)
    .option('--region <region>', 'with --api: the signing region (default: the URL\'s, else AWS_REGION)')
    .option('--profile <name>', 'with --api: the AWS profile to sign with (default: AWS_PROFILE, else the default credential chain)')
    .action(async (scenario: string, opts: { json?: boolean; trace?: string; chaos?: string; seed: number; data?: string; fsync?: boolean; keepPoison?: boolean; engines?: boolean; hooks?: string; rehearse?: boolean; team?: string } & RemoteFlags) => {
      const options: RunCommandOptions = {
        json: Boolean(opts.json),
        trace: opts.trace,
        chaos: parseChaos(opts.chaos, opts.seed),
        dataDir: opts.data,
        fsync: opts.fsync,
        keepPoison: opts.keepPoison,
        // With --data and no --engines: the tier the folder was written by (local/embedded-engines tierFor).
        tier: opts.engines ? 'engines' : undefined,
        hooks: opts.hooks,
        handleSignals: mainOptions.signals,
        out: io.out,
        err: io.err,
        tty: Boolean((io.out as NodeJS.WriteStream).isTTY) && !opts.json,
      };
      const api = await apiOf(opts);
      if (api) {
        if (opts.rehearse || opts.chaos || opts.data || opts.fsync || opts.keepPoison || opts.engines || opts.hooks) {
          io.err.write('error: --rehearse, --chaos, --data, --fsync, --keep-poison, --engines and --hooks are not available with --api (the stack runs the scenario)\n');
          exitCode = 2;
          return;
        }
        const { remoteRun } = await import('./remote/remote-run');
        exitCode = await remoteRun(scenario, { ...options, target: targetOf({ ...opts, api }), team: opts.team });
        return;
      }
      if (opts.rehearse) {
        if (opts.chaos || opts.data || opts.fsync || opts.keepPoison || opts.engines || opts.hooks) {
          io.err.write('error: --chaos, --data, --fsync, --keep-poison, --engines and --hooks are not available with --rehearse\n');
          exitCode = 2;
          return;
        }
        // Loaded only here: the rehearsal brings the AWS-API engines and the SDK clients.
        const { rehearseScenario } = await import('./rehearsal/rehearse-command');
        exitCode = await rehearseScenario(scenario, { ...options, team: opts.team });
        return;
      }
      if (opts.fsync && !opts.data) {
        io.err.write('error: --fsync needs --data (it flushes the journal kept there)\n');
        exitCode = 2;
        return;
      }
      if (opts.keepPoison && !opts.data) {
        io.err.write('error: --keep-poison needs --data (redrive and resume work on the state kept there)\n');
        exitCode = 2;
        return;
      }
      if (opts.team) {
        io.err.write('error: --team needs --rehearse, --api or --stack\n');
        exitCode = 2;
        return;
      }
      exitCode = await runScenario(scenario, options);
    });

  program
    .command('dev')
    .description('serve the HTTP API (the same routes as API Gateway) and a live tree page on 127.0.0.1; prints the address')
    .option('--port <n>', 'port on 127.0.0.1 (0: any free port)', '0')
    .option('--api <url>', "serve the page against a team's deployed API: its calls are signed here with your AWS credentials (never sent to the browser)")
    .option('--stack <team>', `as --api, with ${STACK_HELP}`)
    .option('--token <jwt>', `with --api: a Cognito ID token instead of SigV4 (env ${TOKEN_ENV})`)
    .option('--region <region>', "with --api: the signing region (default: the URL's, else AWS_REGION)")
    .option('--profile <name>', 'with --api: the AWS profile to sign with')
    .action(async (opts: { port: string } & RemoteFlags) => {
      const api = await apiOf(opts);
      exitCode = await runDevCommand({ port: opts.port, target: api ? targetOf({ ...opts, api }) : undefined, out: io.out, err: io.err });
    });

  const sourceOptions = (command: Command) =>
    command
      .option('--api <url>', "a team's deployed API (the stack's ApiUrl; env BRANCH_SPAWNER_API), or a dev server's address")
      .option('--stack <team>', STACK_HELP)
      .option('--data <dir>', 'a local data folder (run --data <dir>)')
      .option('--token <jwt>', `with --api: a Cognito ID token instead of SigV4 (env ${TOKEN_ENV})`)
      .option('--region <region>', "with --api: the signing region (default: the URL's, else AWS_REGION)")
      .option('--profile <name>', 'with --api: the AWS profile to sign with');
  const sourceOf = async (opts: RemoteFlags & { data?: string }) => {
    if (opts.stack !== undefined && opts.data) throw new ValidationError('give --stack or --data, not both', '--stack');
    const api = await apiOf(opts);
    return { ...opts, api: opts.data || opts.stack !== undefined ? api : (api ?? process.env.BRANCH_SPAWNER_API) };
  };

  sourceOptions(program.command('runs').description('list runs, newest first: yours on --api/--stack (GET /runs; the team\'s with shareRuns), or those of --data'))
    .option('--json', 'one JSON document')
    .action(async (opts: RemoteFlags & { data?: string; json?: boolean }) => {
      exitCode = await runsCommand({ ...(await sourceOf(opts)), json: Boolean(opts.json) }, io);
    });
  sourceOptions(program.command('show').description("a run's status, metrics, tree and result, as run prints them (exit 0 COMPLETED or RUNNING, 1 otherwise)").argument('<runId>'))
    .option('--json', 'the run document of run --json')
    .action(async (runId: string, opts: RemoteFlags & { data?: string; json?: boolean }) => {
      exitCode = await showCommand(runId, { ...(await sourceOf(opts)), json: Boolean(opts.json) }, io);
    });
  sourceOptions(program.command('tree').description("a run's tree").argument('<runId>'))
    .option('--format <format>', 'ascii, mermaid or json', 'ascii')
    .action(async (runId: string, opts: RemoteFlags & { data?: string; format: string }) => {
      exitCode = await treeCommand(runId, { ...(await sourceOf(opts)), format: opts.format }, io);
    });
  sourceOptions(program.command('cancel').description('cancel a run').argument('<runId>')).action(async (runId: string, opts: RemoteFlags & { data?: string }) => {
    exitCode = await cancelCommand(runId, await sourceOf(opts), io);
  });
  sourceOptions(program.command('callback').description("answer a branch's callback: the branch goes on with the answer as its next input (exit 0 taken, 1 refused, 2 bad input)").argument('<runId>').argument('<token>', 'the token of the BranchWaitingForCallback event (or the branch view)'))
    .option('--answer <json>', "the answer, as JSON (a text is quoted: '\"yes\"')")
    .option('--answer-file <file>', 'the answer, as a JSON file')
    .action(async (runId: string, token: string, opts: RemoteFlags & { data?: string; answer?: string; answerFile?: string }) => {
      exitCode = await callbackCommand(runId, token, { ...(await sourceOf(opts)), answer: opts.answer, answerFile: opts.answerFile }, io);
    });
  sourceOptions(program.command('events').description("a run's lifecycle events as JSON lines (the --trace format)").argument('<runId>'))
    .option('--follow', 'keep printing new events until the run has ended')
    .option('--after <cursor>', 'only events after this cursor (the `cursor` of GET /runs/{runId}/events)')
    .action(async (runId: string, opts: RemoteFlags & { data?: string; follow?: boolean; after?: string }) => {
      exitCode = await eventsCommand(runId, { ...(await sourceOf(opts)), follow: Boolean(opts.follow), after: opts.after }, io);
    });

  program
    .command('rehearse')
    .description('keep a rehearsed stack running: rehearse up [--team <name>]')
    .argument('<action>', 'up')
    .option('--team <name>', 'the team stack of infra/teams/<name>.json (default: a rehearsal team with inline script agents)')
    .option('--jwt', 'without --team: the rehearsal team authenticates with Cognito ID tokens (a local user pool signs them; one is printed)')
    .option('--port <n>', 'the API on this port of 127.0.0.1 (0: any free port)', '0')
    .option('--json', 'print the API URL and the credentials as one JSON document')
    .action(async (action: string, opts: { team?: string; jwt?: boolean; port: string; json?: boolean }) => {
      if (action !== 'up') {
        io.err.write(`error: unknown action "${action}" (rehearse up)\n`);
        exitCode = 2;
        return;
      }
      if (opts.jwt && opts.team) {
        io.err.write('error: --jwt is for the rehearsal team; a team of infra/teams brings its own auth\n');
        exitCode = 2;
        return;
      }
      const { rehearseUpCommand } = await import('./rehearsal/rehearse-up');
      const until = new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
      exitCode = await rehearseUpCommand({ team: opts.team, jwt: opts.jwt, port: Number(opts.port), json: Boolean(opts.json), out: io.out, err: io.err, until });
    });

  program
    .command('resume')
    .description('carry on a run whose process died, from the state kept with run --data; exit codes as run')
    .argument('[runId]', 'the run to resume (without it: list the unfinished runs kept in --data)')
    .option('--data <dir>', 'the folder the run kept its state in (run --data <dir>)')
    .option('--scenario <file>', "the run's scenario file, when it names registered aggregators")
    .option('--json', 'print exactly one JSON document (run, metrics, branches)')
    .option('--trace <file>', 'append every lifecycle event to this JSONL file')
    .option('--keep-poison', 'leave dead-lettered steps in the DLQ for redrive instead of failing their branches')
    .option('--chaos <faults>', CHAOS_HELP)
    .option('--seed <n>', 'seed for --chaos (an integer)', integerOption, 1)
    .option('--fsync', 'flush every journal write to the disk (see run --fsync)')
    .action(async (runId: string | undefined, opts: { data?: string; scenario?: string; json?: boolean; trace?: string; keepPoison?: boolean; chaos?: string; seed: number; fsync?: boolean }) => {
      exitCode = await resumeCommand({
        runId,
        dataDir: opts.data,
        scenario: opts.scenario,
        json: Boolean(opts.json),
        trace: opts.trace,
        keepPoison: opts.keepPoison,
        chaos: parseChaos(opts.chaos, opts.seed),
        fsync: opts.fsync,
        out: io.out,
        err: io.err,
      });
    });

  program
    .command('redrive')
    .description('move the step messages in the dead-letter queue back to the step queue (then: resume <runId>)')
    .option('--data <dir>', 'the folder the runs kept their state in (run --data <dir>)')
    .action(async (opts: { data?: string }) => {
      exitCode = await redriveCommand({ dataDir: opts.data, out: io.out, err: io.err });
    });

  program
    .command('gc')
    .description('remove the blobs (large values) of a data folder that no stored item refers to any more')
    .option('--data <dir>', 'the folder the runs kept their state in (run --data <dir>)')
    .action(async (opts: { data?: string }) => {
      exitCode = await gcCommand({ dataDir: opts.data, out: io.out, err: io.err });
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? 0 : 2;
    }
    if (error instanceof ScenarioError || error instanceof ValidationError || error instanceof LimitExceededError || error instanceof PayloadTooLargeError || error instanceof InUseError || error instanceof ForbiddenError) {
      io.err.write(`error: ${error.message}\n`);
      return 2;
    }
    // A data folder that cannot be used (damaged journal, full or read-only disk): one line, exit 2.
    if (error instanceof DataFolderError || diskRefusal(error)) {
      io.err.write(`error: ${error instanceof DataFolderError ? error.message : `the data folder refused a write: ${describeThrown(error)}`}\n`);
      return 2;
    }
    if (error instanceof RemoteApiError) {
      io.err.write(`error: ${error.message}\n`);
      // A run the API does not have, or input it refuses as bad or too large, is a bad argument, as locally.
      return error.status === 404 || error.status === 400 || error.status === 413 ? 2 : 1;
    }
    io.err.write(`error: ${(error as Error)?.stack ?? error}\n`);
    return 1;
  }
  return exitCode;
}
