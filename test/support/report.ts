/**
 * Figures a test measured (fault counts, status tallies). Printed only when asked for with
 * TEST_REPORT=1, so `npm test` stays quiet when green; docs/reliability.md says how to get them.
 */
export function report(...parts: unknown[]): void {
  if (process.env.TEST_REPORT) console.log(...parts);
}
