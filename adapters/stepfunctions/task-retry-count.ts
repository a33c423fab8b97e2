/**
 * `$$.State.RetryCount` where Step Functions is emulated. In AWS a Task state's parameters may
 * read how many times the state has been retried (0 on its first attempt); the fan-out's
 * failed-iteration tasks pass it on, so that only a real retry tells again what it may have begun.
 *
 * aws-local-stepfunctions has no `State` in its context object (a path to it is an uncatchable
 * States.Runtime), and it calls a task's local handler again, with the same input, for each retry.
 * So the context gets a placeholder (`ENGINE_CONTEXT_STATE`), and `TaskRetryCounts` replaces it in
 * the handler's input with the failed attempts it counted for that state and input: one iteration's
 * retries share both, and two iterations differ in their items (a branch id, a batch's range).
 */

/** What `$$.State.RetryCount` resolves to on the engine, replaced in each task's input. */
export const RETRY_COUNT_PLACEHOLDER = 'replaced-by-the-retry-count';

/** The context object's `State` for the engine (beside the task token's placeholder). */
export const ENGINE_CONTEXT_STATE = { RetryCount: RETRY_COUNT_PLACEHOLDER };

/** The retry counts of one execution's tasks. */
export class TaskRetryCounts {
  private readonly failed = new Map<string, number>();

  /**
   * One attempt of a task: `call` gets the input with the retry count in place of the
   * placeholder, and the count itself; a failure (the engine may retry it) counts for the next.
   */
  async attempt<T>(state: string, input: unknown, call: (input: any, retryCount: number) => Promise<T>): Promise<T> {
    const text = JSON.stringify(input) ?? 'null';
    const key = `${state}\n${text}`;
    const retryCount = this.failed.get(key) ?? 0;
    const filled = text.includes(RETRY_COUNT_PLACEHOLDER) ? JSON.parse(text.split(`"${RETRY_COUNT_PLACEHOLDER}"`).join(String(retryCount))) : input;
    try {
      return await call(filled, retryCount);
    } catch (error) {
      this.failed.set(key, retryCount + 1);
      throw error;
    }
  }
}
