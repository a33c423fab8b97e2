/**
 * The repository stands on its own: no file refers a reader to documents outside it (a design
 * document or seed files that a clone does not have). Write what a user needs in the repo instead.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const SKIP = new Set(['node_modules', '.git', 'cdk.out', 'package-lock.json', '.data']);
const SKIP_PATHS = new Set(['bench/results']);
const TEXT = /\.(ts|js|mjs|cjs|json|ya?ml|md|html|css|txt|sh)$|^run$|^Dockerfile$/;

// Built from parts so this file does not match itself.
const OUTSIDE = new RegExp(['\\.\\./' + 'shared', 'DESIGN' + '\\.md', 'DESIGN' + ' §', '\\bseed' + '[- ]?00[02]\\b'].join('|'), 'i');

function* files(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (SKIP.has(name) || SKIP_PATHS.has(relative(ROOT, path)) || name.startsWith('cdk.out')) continue;
    if (statSync(path).isDirectory()) yield* files(path);
    else if (TEXT.test(name)) yield path;
  }
}

describe('the repository stands on its own', () => {
  it('no file cites a document outside the repository', () => {
    const hits: string[] = [];
    for (const path of files(ROOT)) {
      readFileSync(path, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (OUTSIDE.test(line)) hits.push(`${relative(ROOT, path)}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(hits).toEqual([]);
  });
});
