#!/usr/bin/env node
// CLI entry: loads the TypeScript CLI through tsx so users need no build step.
import { readFileSync } from 'node:fs';

// `--version` answers from package.json: loading tsx and the CLI takes seconds on a busy machine.
const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  process.stdout.write(`${JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version}\n`);
  process.exit(0);
}

const { register } = await import('tsx/esm/api');

// fauxqs loads node:sqlite, whose ExperimentalWarning is noise for a CLI user.
const emitWarning = process.emitWarning;
process.emitWarning = (warning, ...rest) =>
  String(warning).includes('SQLite') ? undefined : emitWarning.call(process, warning, ...rest);

register();
const { main } = await import('../local/cli.ts');
const code = await main(args, undefined, { signals: true });
// Work cancelled by the run's end (timers of aborted fan-outs) must not keep the process alive.
process.stdout.write('', () => process.exit(code));
