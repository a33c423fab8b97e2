/** Reads a scenario file (YAML or JSON) and its aggregator module, with errors naming the file. */
import { readFile } from 'node:fs/promises';
import { dirname, extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { AggregatorFn } from '../core/aggregators';
import { ScenarioError } from '../core/errors';
import { parseScenario, type Scenario } from '../core/scenario';
import { resolveModuleAgents } from './module-agents';

export interface LoadedScenario {
  path: string;
  scenario: Scenario;
  aggregators: Record<string, AggregatorFn>;
}

export async function loadScenarioFile(path: string): Promise<LoadedScenario> {
  const file = resolve(path);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ScenarioError(path, `cannot read the file (${(error as NodeJS.ErrnoException).code ?? error})`, undefined, { cause: error });
  }
  let document: unknown;
  try {
    document = extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text, { prettyErrors: true });
  } catch (error) {
    const where = error instanceof YAMLParseError && error.linePos ? ` at line ${error.linePos[0].line}` : '';
    throw new ScenarioError(path, `not valid ${extname(file) === '.json' ? 'JSON' : 'YAML'}${where}: ${(error as Error).message.split('\n')[0]}`, undefined, { cause: error });
  }
  const scenario = await resolveModuleAgents(parseScenario(document, path), file, path);
  const aggregators = scenario.aggregators ? await loadAggregators(path, resolve(dirname(file), scenario.aggregators)) : {};
  return { path, scenario, aggregators };
}

async function loadAggregators(source: string, modulePath: string): Promise<Record<string, AggregatorFn>> {
  let module: Record<string, unknown>;
  try {
    module = await import(pathToFileURL(modulePath).href);
  } catch (error) {
    throw new ScenarioError(source, `aggregators: cannot load ${modulePath}: ${(error as Error).message}`, 'aggregators', { cause: error });
  }
  const fns = Object.entries(module).filter(([name, fn]) => typeof fn === 'function' && name !== 'default');
  if (fns.length === 0) {
    throw new ScenarioError(source, `aggregators: ${modulePath} exports no functions`, 'aggregators');
  }
  return Object.fromEntries(fns) as Record<string, AggregatorFn>;
}
