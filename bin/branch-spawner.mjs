#!/usr/bin/env node
// CLI entry: loads the TypeScript CLI through tsx so users need no build step.
import { register } from 'tsx/esm/api';

// fauxqs loads node:sqlite, whose ExperimentalWarning is noise for a CLI user.
const emitWarning = process.emitWarning;
process.emitWarning = (warning, ...rest) =>
  String(warning).includes('SQLite') ? undefined : emitWarning.call(process, warning, ...rest);

register();
const { main } = await import('../local/cli.ts');
const code = await main(process.argv.slice(2), undefined, { signals: true });
// Work cancelled by the run's end (timers of aborted fan-outs) must not keep the process alive.
process.stdout.write('', () => process.exit(code));
