// Registered functions for examples/quorum-custom-aggregator.yaml (an aggregator) and
// examples/completion-function.yaml (a completion function): each export is one aggregator, or a
// completion function that `complete_when: "fn:<export>"` names.
import type { ChildResult } from '../core/aggregators';

/** The median of the children's numeric `value`s. */
export function median(children: ChildResult[]): number | null {
  const values = children
    .filter((c) => c.status === 'COMPLETED')
    .map((c) => (c.result as { value?: number } | null)?.value)
    .filter((v): v is number => typeof v === 'number')
    .sort((a, b) => a - b);
  if (values.length === 0) return null;
  const mid = Math.floor(values.length / 2);
  return values.length % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

/**
 * A completion function (`complete_when: "fn:primaryOrBothBackups"`): the fan-out is done once its
 * first child succeeded, or its second and third both did. It sees every child as it is now
 * (those still running too) and answers true or false.
 */
export function primaryOrBothBackups(children: ChildResult[]): boolean {
  const ok = (i: number) => children[i]?.status === 'COMPLETED';
  return ok(0) || (ok(1) && ok(2));
}
