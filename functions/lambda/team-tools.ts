/**
 * The team's module tools in AWS: the modules that the registry's `module` tools name are bundled
 * into the step worker at synth (infra/spawner-function.ts generates an entry that registers each
 * here, under the path as the agent's definition writes it, before the handler runs). The tool box
 * takes its module tools from here; no file is ever loaded in a deployed function.
 */
import type { BundledModules } from '../../adapters/tools/tool-box';

const registered: BundledModules = {};

/** Registers modules by the path the registry's definitions name them with. */
export function registerToolModules(modules: BundledModules): void {
  Object.assign(registered, modules);
}

export function teamToolModules(): BundledModules {
  return registered;
}
