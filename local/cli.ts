/** `branch-spawner` — runs scenarios on the embedded engines. */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { readFileSync } from 'node:fs';
import { InUseError, LimitExceededError, PayloadTooLargeError, ScenarioError, ValidationError } from '../core/errors';
import { CHAOS_FAULTS, parseChaos } from './chaos';
import { redriveCommand } from './redrive-command';
import { resumeCommand } from './resume-command';
import { runDevCommand } from './dev-server';
import { runScenario, type RunCommandOptions } from './run-command';

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
    .option('--team <name>', 'with --rehearse: the team stack of infra/teams/<name>.json (default: a rehearsal team)')
    .action(async (scenario: string, opts: { json?: boolean; trace?: string; chaos?: string; seed: number; data?: string; fsync?: boolean; keepPoison?: boolean; engines?: boolean; hooks?: string; rehearse?: boolean; team?: string }) => {
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
        io.err.write('error: --team needs --rehearse\n');
        exitCode = 2;
        return;
      }
      exitCode = await runScenario(scenario, options);
    });

  program
    .command('dev')
    .description('serve the HTTP API (the same routes as API Gateway) and a live tree page on 127.0.0.1; prints the address')
    .option('--port <n>', 'port on 127.0.0.1 (0: any free port)', '0')
    .action(async (opts: { port: string }) => {
      exitCode = await runDevCommand({ port: opts.port, out: io.out, err: io.err });
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

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? 0 : 2;
    }
    if (error instanceof ScenarioError || error instanceof ValidationError || error instanceof LimitExceededError || error instanceof PayloadTooLargeError || error instanceof InUseError) {
      io.err.write(`error: ${error.message}\n`);
      return 2;
    }
    io.err.write(`error: ${(error as Error)?.stack ?? error}\n`);
    return 1;
  }
  return exitCode;
}
