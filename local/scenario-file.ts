/** Reads a scenario file (YAML or JSON) and its aggregator module, with errors naming the file. */
import { readFile, stat } from 'node:fs/promises';
import { dirname, extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { AggregatorFn } from '../core/aggregators';
import { PayloadTooLargeError, ScenarioError } from '../core/errors';
import { MAX_DOCUMENT_DEPTH, MAX_DOCUMENT_TEXT_BYTES } from '../core/input-bounds';
import { toStartRunInput, type AgentPolicy } from '../core/run-request';
import { parseScenario, type Scenario } from '../core/scenario';
import type { StartRunInput } from '../core/use-cases/start-run';
import { resolveModuleAgents } from './module-agents';

export interface LoadedScenario {
  path: string;
  scenario: Scenario;
  aggregators: Record<string, AggregatorFn>;
}

/** The document of a scenario file (YAML or JSON), size- and depth-checked; errors name the file. */
export async function readScenarioDocument(path: string): Promise<unknown> {
  const file = resolve(path);
  let text: string;
  try {
    const { size } = await stat(file);
    if (size > MAX_DOCUMENT_TEXT_BYTES) {
      const message = `${path}: the file is ${size} bytes; at most ${MAX_DOCUMENT_TEXT_BYTES} are read`;
      throw new PayloadTooLargeError(message, size, MAX_DOCUMENT_TEXT_BYTES, { field: '(root)' });
    }
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (error instanceof PayloadTooLargeError) throw error;
    throw new ScenarioError(path, `cannot read the file (${(error as NodeJS.ErrnoException).code ?? error})`, undefined, { cause: error });
  }
  try {
    return extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text, { prettyErrors: true });
  } catch (error) {
    const where = error instanceof YAMLParseError && error.linePos ? ` at line ${error.linePos[0].line}` : '';
    const detail = /call stack/i.test((error as Error).message)
      ? `nested too deeply to read (more than ${MAX_DOCUMENT_DEPTH} levels are never accepted)`
      : (error as Error).message.split('\n')[0];
    throw new ScenarioError(path, `not valid ${extname(file) === '.json' ? 'JSON' : 'YAML'}${where}: ${detail}`, undefined, { cause: error });
  }
}

export async function loadScenarioFile(path: string): Promise<LoadedScenario> {
  const file = resolve(path);
  const document = await readScenarioDocument(path);
  const scenario = await resolveModuleAgents(parseScenario(document, path), file, path);
  const aggregators = scenario.aggregators ? await loadAggregators(path, resolve(dirname(file), scenario.aggregators)) : {};
  return { path, scenario, aggregators };
}

/** A scenario file for a team's stack, and the POST /runs body that starts it there. */
export interface StackScenario {
  /** The run as the stack will see it (registry agents included); undefined when the registry is not known here. */
  scenario?: StartRunInput;
  body: Record<string, unknown>;
}

/**
 * Reads a scenario file to run on a team's stack. It may name the team's registry agents without
 * defining them, and define inline agents where the team allows them; `policy` (the team's
 * registry, when it is known here) checks that before anything is sent, with errors naming the
 * file. Its `aggregators:` module is never sent: a stack runs the aggregators bundled into it.
 */
export async function loadStackScenarioFile(path: string, policy?: AgentPolicy): Promise<StackScenario> {
  const document = await readScenarioDocument(path);
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    throw new ScenarioError(path, '(root): must be a scenario document (an object)', '(root)');
  }
  const { aggregators: _bundled, description: _description, ...body } = document as Record<string, unknown>;
  if (!policy) return { body };
  return { scenario: toStartRunInput(body, { team: 'check', policy, source: path }), body };
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
