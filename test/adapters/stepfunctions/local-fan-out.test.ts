// Long-running: started first (vitest.config.ts).
/** LocalFanOutOrchestrator: the fan-out ASL run by aws-local-stepfunctions, held to the fan-out contract. */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { LocalFanOutOrchestrator, localDefinition } from '../../../adapters/stepfunctions/local-fan-out';
import { describeFanOutConformance } from '../fan-out-conformance';

describeFanOutConformance('the ASL on aws-local-stepfunctions', (options) => new LocalFanOutOrchestrator(options));

describe('the definition LocalFanOutOrchestrator runs', () => {
  it('validates with asl-validator (paths and ARNs checked), as the engine would check it', () => {
    // The orchestrator does not validate at run time (see its constructor): this test does.
    const aslValidator = createRequire(import.meta.url)('asl-validator') as (
      definition: unknown,
      options?: { checkPaths?: boolean; checkArn?: boolean },
    ) => { isValid: boolean; errorsText(separator?: string): string };
    const result = aslValidator(localDefinition(), { checkPaths: true, checkArn: true });
    expect(result.errorsText('\n')).toBe('');
    expect(result.isValid).toBe(true);
  });
});
