/** The example scenarios the page offers, and YAML pasted on the page turned into a document. */
import type { APIGatewayProxyResult } from 'aws-lambda';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { AggregatorFn } from '../../core/aggregators';
import { errorMessage, ValidationError } from '../../core/errors';
import { checkDocumentBounds } from '../../core/input-bounds';
import { json } from '../../functions/handlers/http-errors';
import { withAbsoluteModulePaths } from '../module-agents';
import { loadScenarioFile } from '../scenario-file';

export interface ExampleView {
  file: string;
  name: string;
  description: string;
  /** The file as written (the page shows it for editing). */
  text: string;
  document: unknown;
}

export function loadExamples(dir: string): ExampleView[] {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => /\.(ya?ml|json)$/.test(f)).sort();
  } catch {
    return [];
  }
  const examples: ExampleView[] = [];
  for (const file of files) {
    const text = readFileSync(join(dir, file), 'utf8');
    try {
      // `module` agents' paths are relative to the example's file; the page posts the document.
      const document = withAbsoluteModulePaths(file.endsWith('.json') ? JSON.parse(text) : parseYaml(text), dir) as { name?: unknown };
      const description = text
        .split('\n')
        .filter((line, i, all) => line.startsWith('#') && all.slice(0, i).every((l) => l.startsWith('#')))
        .map((line) => line.replace(/^#\s?/, ''))
        .join(' ');
      examples.push({ file, name: String(document?.name ?? file), description, text, document });
    } catch {
      // A broken example is left out of the list; `branch-spawner run` reports it properly.
    }
  }
  return examples;
}

/** The registered aggregators of every example that names a module (e.g. `median`). */
export async function exampleAggregators(dir: string): Promise<Record<string, AggregatorFn>> {
  const all: Record<string, AggregatorFn> = {};
  for (const example of loadExamples(dir)) {
    if (!(example.document as { aggregators?: unknown })?.aggregators) continue;
    try {
      Object.assign(all, (await loadScenarioFile(join(dir, example.file))).aggregators);
    } catch {
      // An example whose module does not load just cannot use its aggregator here.
    }
  }
  return all;
}

/** The aggregator modules the examples name (as written, e.g. `./aggregators.ts`): dev registers them. */
export function exampleAggregatorModules(examples: readonly ExampleView[]): string[] {
  const modules = examples.map((e) => (e.document as { aggregators?: unknown } | null)?.aggregators);
  return [...new Set(modules.filter((m): m is string => typeof m === 'string'))];
}

/** YAML (or JSON, which is YAML) pasted on the page becomes the JSON document POST /runs takes. */
export function parseScenarioText(text: string, moduleDir?: string): APIGatewayProxyResult {
  if (!text.trim()) throw new ValidationError('the scenario is empty', '(root)');
  let document: unknown;
  try {
    document = parseYaml(text, { prettyErrors: true });
  } catch (error) {
    const where = error instanceof YAMLParseError && error.linePos ? ` at line ${error.linePos[0].line}` : '';
    throw new ValidationError(`the scenario is not valid YAML or JSON${where}: ${errorMessage(error).split('\n')[0]}`, '(root)');
  }
  // As a scenario file is checked: too deep, too large, or a YAML alias inside its own anchor.
  checkDocumentBounds(document, 'the scenario');
  return json(200, { document: moduleDir ? withAbsoluteModulePaths(document, moduleDir) : document });
}
