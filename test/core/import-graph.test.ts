/**
 * core/ has no import circle: a module's imports, type-only ones included, never lead back to it
 * (a type shared by two modules lives with the concept it names, not in either of them). Read from
 * the sources; a circle is reported as the path that closes it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '../..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/**
 * Relative imports that load code: `import type` and `export type` left out, `import { type X }`
 * only when some name is a value. With `types`, every relative import.
 */
function valueImports(file: string, types = false): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\s+(type\s+)?((?:[\w$]+\s*,\s*)?(?:\{[^}]*\}|\*(?:\s+as\s+[\w$]+)?|[\w$]+))\s*from\s+'(\.[^']+)'/gm)) {
    if (m[1] && !types) continue;
    const names = /\{([^}]*)\}/.exec(m[2])?.[1];
    const onlyTypes = names !== undefined && !/^[^{]*\w/.test(m[2].replace(/\{[^}]*\}/, '')) && names.split(',').map((n) => n.trim()).filter(Boolean).every((n) => n.startsWith('type '));
    if (onlyTypes && !types) continue;
    found.push(resolve(dirname(file), `${m[3]}.ts`));
  }
  for (const m of text.matchAll(/^import\s+'(\.[^']+)'/gm)) found.push(resolve(dirname(file), `${m[1]}.ts`));
  return found;
}

export function importCircles(dir: string, options: { types?: boolean } = {}): string[][] {
  const files = sources(dir);
  const graph = new Map(files.map((f) => [f, valueImports(f, options.types).filter((to) => files.includes(to))]));
  const circles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    path.push(file);
    for (const to of graph.get(file) ?? []) {
      if (state.get(to) === 'open') circles.push([...path.slice(path.indexOf(to)), to].map((f) => relative(ROOT, f)));
      else if (!state.has(to)) visit(to);
    }
    path.pop();
    state.set(file, 'done');
  };
  for (const file of files) if (!state.has(file)) visit(file);
  return circles;
}

describe('core/ imports', () => {
  it('form no circle, counting type-only imports', () => {
    expect(importCircles(join(ROOT, 'core'), { types: true }).map((c) => c.join(' -> '))).toEqual([]);
  });

  it('the check finds a circle where there is one', () => {
    // The check itself must be able to fail: test/core/fixtures has a circle of value imports
    // (a -> b -> a) and one of type-only imports (a -> c -> a), found only when types count.
    expect(importCircles(join(__dirname, 'fixtures', 'circle'))).toHaveLength(1);
    expect(importCircles(join(__dirname, 'fixtures', 'circle'), { types: true }).map((c) => c.map((f) => f.split('/').pop()).join(' -> '))).toEqual([
      'a.ts -> b.ts -> a.ts',
      'a.ts -> c.ts -> a.ts',
    ]);
  });
});
