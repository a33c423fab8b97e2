/** A request never brings code: an aggregators module is accepted only if the deployment registered it. */
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../core/errors';
import { toStartRunInput } from '../../core/run-request';

const doc = (extra: Record<string, unknown> = {}) => ({
  name: 'x',
  entry: 'A',
  agents: { A: { kind: 'script', responses: [{ next_action: 'final_response', content: 1 }] } },
  ...extra,
});

describe('toStartRunInput: aggregators modules', () => {
  it('refuses a module the deployment did not register, saying why and naming the field', () => {
    const refuse = (aggregatorModules?: string[]) => {
      try {
        toStartRunInput(doc({ aggregators: './mine.ts' }), { team: 't', policy: { registry: {}, inline: 'any', aggregatorModules } });
      } catch (error) {
        return error as ValidationError;
      }
      throw new Error('accepted');
    };
    expect(refuse()).toBeInstanceOf(ValidationError);
    expect(refuse()).toMatchObject({ field: 'aggregators', message: expect.stringMatching(/cannot load code.*"\.\/mine\.ts" would be ignored.*no aggregator module/) });
    expect(refuse(['./aggregators.ts']).message).toMatch(/registered the aggregators of \.\/aggregators\.ts only/);
  });

  it('accepts a registered module, and a document without one', () => {
    const policy = { registry: {}, inline: 'any' as const, aggregatorModules: ['./aggregators.ts'] };
    expect(toStartRunInput(doc({ aggregators: './aggregators.ts' }), { team: 't', policy }).aggregators).toBe('./aggregators.ts');
    expect(toStartRunInput(doc(), { team: 't', policy: { registry: {}, inline: 'any' } }).aggregators).toBeUndefined();
  });
});
