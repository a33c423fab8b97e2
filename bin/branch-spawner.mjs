#!/usr/bin/env node
// CLI entry: loads the TypeScript CLI through tsx so users need no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../local/cli.ts');
process.exitCode = await main(process.argv.slice(2));
