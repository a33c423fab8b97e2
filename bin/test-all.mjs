#!/usr/bin/env node
// `npm test`: lint, typecheck and the test suites at the same time. The suites spend much of their
// time waiting on engines and timers, so the checks run in that idle CPU instead of before it.
// Every check runs to its end (all failures are shown); the exit code is non-zero if any failed.
// The checks print only when they fail; vitest's output streams as it comes.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);

function run(name, command, args, { stream = false } = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio: stream ? 'inherit' : ['ignore', 'pipe', 'pipe'] });
    let output = '';
    if (!stream) {
      child.stdout.on('data', (chunk) => (output += chunk));
      child.stderr.on('data', (chunk) => (output += chunk));
    }
    child.on('error', (error) => resolve({ name, code: 1, output: String(error) }));
    child.on('close', (code, signal) => resolve({ name, code: code ?? (signal ? 1 : 0), output }));
  });
}

const results = await Promise.all([
  run('lint', bin('eslint'), ['.']),
  run('typecheck', bin('tsc'), ['--noEmit', '-p', 'tsconfig.json']),
  run('tests', bin('vitest'), ['run', ...process.argv.slice(2)], { stream: true }),
]);

const failed = results.filter((r) => r.code !== 0);
for (const r of failed) {
  if (r.output) process.stderr.write(`\n${r.name} failed:\n${r.output}`);
}
if (failed.length > 0) {
  process.stderr.write(`\nnpm test: ${failed.map((r) => r.name).join(', ')} failed\n`);
  process.exit(1);
}
