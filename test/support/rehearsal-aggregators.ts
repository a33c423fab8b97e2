/**
 * The registered aggregators the tests' rehearsal bundles into its functions (as a team config's
 * `aggregators` module): the examples' ones and the behaviours table's.
 */
import type { ChildResult } from '../../core/aggregators';

export * from '../../examples/aggregators';

/** The children's results joined with `+` (the behaviours table's registered aggregator). */
export function concat(children: ChildResult[]): string {
  return children.map((c) => c.result).join('+');
}
