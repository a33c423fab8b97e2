/**
 * The fan-out's contract, run against both local orchestrators: the ASL on the embedded engine
 * (LocalFanOutOrchestrator: journal and engines tiers) and the in-memory one (MemoryFanOut: the
 * memory tier). They dispatch into a real (in-memory) StepQueue; the test plays the step worker:
 * it takes messages off the queue and reports children finished.
 */
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../core/errors';
import type { BatchDispatchInput, BatchFailureInput, FanOutOrchestrator, FanOutRequest, FanOutTasks, StepMessage, StepQueue } from '../../core/ports';
import { MemoryQueue } from '../../adapters/memory/memory-queue';
import type { ChildFailureInput as RecordChildFailureInput, FanOutFailureInput, AggregateInput } from '../../core/ports';
import { LOCAL_TOKEN_PREFIX } from '../../adapters/stepfunctions/fan-out-definition';

export interface LocalOrchestrator extends FanOutOrchestrator {
  idle(): Promise<void>;
  activeExecutions(): number;
}

export type FanOutFactory = (options: { queue: StepQueue; tasks: FanOutTasks; onExecutionError: (error: unknown) => void }) => LocalOrchestrator;

type TaskCall =
  | { task: 'dispatchBatch'; input: BatchDispatchInput }
  | { task: 'recordBatchFailure'; input: BatchFailureInput }
  | { task: 'recordChildFailure'; input: RecordChildFailureInput }
  | { task: 'aggregate'; input: AggregateInput }
  | { task: 'recordFanOutFailure'; input: FanOutFailureInput };

/** A per-child request (one Map iteration per child); `batched` below asks for batches. */
function request(children: number, maxConcurrency: number, timeoutSeconds = 60, executionName = 'run1-root-s1'): FanOutRequest {
  return {
    dispatch: 'per-child',
    team: 'blue',
    runId: 'run1',
    parentId: 'root',
    seq: 1,
    executionName,
    maxConcurrency,
    firstIndex: 0,
    count: children,
    timeoutSeconds,
  };
}

const done = (branchId: string) => ({ branchId, status: 'COMPLETED' as const });

export function describeFanOutConformance(name: string, create: FanOutFactory): void {
  function setup(
    options: { queue?: StepQueue; failAggregate?: boolean; failRecord?: boolean; failFanOutRecord?: boolean; failDispatchBatch?: boolean } = {},
  ) {
    const queue = new MemoryQueue();
    const calls: TaskCall[] = [];
    const errors: unknown[] = [];
    const fanOut = create({
      queue: options.queue ?? queue,
      tasks: {
        recordChildFailure: async (input) => {
          calls.push({ task: 'recordChildFailure', input });
          if (options.failRecord) throw new Error('record exploded');
        },
        aggregate: async (input) => {
          calls.push({ task: 'aggregate', input });
          if (options.failAggregate) throw new Error('aggregate exploded');
        },
        recordFanOutFailure: async (input) => {
          calls.push({ task: 'recordFanOutFailure', input });
          if (options.failFanOutRecord) throw new Error('fan-out failure exploded');
        },
        // The batched path: the test plays the use cases (it holds the batch's token and releases it).
        dispatchBatch: async (input) => {
          calls.push({ task: 'dispatchBatch', input });
          if (options.failDispatchBatch) {
            const error = new Error('dispatch exploded');
            error.name = 'BatchDispatchError';
            throw error;
          }
        },
        recordBatchFailure: async (input) => {
          calls.push({ task: 'recordBatchFailure', input });
          if (options.failRecord) throw new Error('record exploded');
        },
      },
      onExecutionError: (error) => errors.push(error),
    });
    return { queue, calls, errors, fanOut };
  }

  // The cases are independent (each has its own orchestrator and queue); several wait on timeouts and retries.
  describe.concurrent(`fan-out contract: ${name}`, () => {
    it('honours MaxConcurrency: 12 children, 3 at a time, all dispatched, Aggregate once at the end', async () => {
      const { queue, calls, errors, fanOut } = setup();
      await fanOut.start(request(12, 3));

      const held: StepMessage[] = [];
      const received: StepMessage[] = [];
      let finished = 0;
      let peak = 0;
      while (finished < 12) {
        if (held.length < 3 && received.length < 12) {
          const { body } = await queue.receive();
          received.push(body);
          held.push(body);
          // Sent but not yet reported = children holding a Map slot.
          peak = Math.max(peak, queue.sent - finished);
          expect(queue.sent - finished).toBeLessThanOrEqual(3);
        } else {
          const oldest = held.shift() as StepMessage;
          await fanOut.childFinished(oldest.taskToken as string, done(oldest.branchId));
          finished++;
        }
      }
      await fanOut.idle();

      expect(peak).toBe(3);
      expect(queue.sent).toBe(12);
      expect(received.map((m) => m.branchId).sort()).toEqual(Array.from({ length: 12 }, (_, i) => `root.${i}`).sort());
      for (const message of received) {
        expect(message).toEqual({ team: 'blue', runId: 'run1', branchId: message.branchId, step: 0, taskToken: expect.any(String) });
        expect(message.taskToken?.startsWith(LOCAL_TOKEN_PREFIX)).toBe(true);
      }
      expect(new Set(received.map((m) => m.taskToken)).size).toBe(12);
      expect(calls).toEqual([{ task: 'aggregate', input: { team: 'blue', runId: 'run1', parentId: 'root', seq: 1, retryCount: 0 } }]);
      expect(errors).toEqual([]);
      expect(fanOut.activeExecutions()).toBe(0);
    });

    it('sends a child past its timeout through RecordChildFailure with States.Timeout, then aggregates', async () => {
      const { queue, calls, errors, fanOut } = setup();
      await fanOut.start(request(2, 2, 1));
      const first = (await queue.receive()).body;
      const second = (await queue.receive()).body;
      const [late, onTime] = first.branchId === 'root.0' ? [first, second] : [second, first];
      await fanOut.childFinished(onTime.taskToken as string, done(onTime.branchId));
      // root.0 is never reported: its 1-second timeout ends the iteration.
      await fanOut.idle();

      expect(calls).toHaveLength(2);
      expect(calls[0]).toEqual({
        task: 'recordChildFailure',
        input: {
          team: 'blue',
          runId: 'run1',
          parentId: 'root',
          seq: 1,
          branchId: 'root.0',
          error: 'States.Timeout',
          cause: expect.any(String),
          // $$.State.RetryCount: its first attempt.
          retryCount: 0,
        },
      });
      expect(calls[1]).toEqual({ task: 'aggregate', input: { team: 'blue', runId: 'run1', parentId: 'root', seq: 1, retryCount: 0 } });
      expect(errors).toEqual([]);
      // The late child's report finds its token closed: not an error.
      await expect(fanOut.childFinished(late.taskToken as string, done(late.branchId))).resolves.toBeUndefined();
    });

    it('stop ends an execution early: no Aggregate, no failure records, pending children released', async () => {
      const { queue, calls, errors, fanOut } = setup();
      await fanOut.start(request(3, 2));
      const first = (await queue.receive()).body;
      await queue.receive();
      expect(fanOut.activeExecutions()).toBe(1);

      await fanOut.stop('run1-root-s1', 'quorum reached');
      await fanOut.idle();

      expect(queue.sent).toBe(2); // the queued third child is never dispatched
      expect(queue.depth).toBe(0);
      expect(calls).toEqual([]);
      expect(errors).toEqual([]);
      expect(fanOut.activeExecutions()).toBe(0);
      await fanOut.childFinished(first.taskToken as string, done(first.branchId));
      await fanOut.stop('run1-root-s1', 'again'); // stopping a finished execution is not an error
      await fanOut.stop('never-started', 'x');
      await fanOut.childFinished(`${LOCAL_TOKEN_PREFIX}unknown`, done('x'));
      expect(calls).toEqual([]);
    });

    it('stop while a dispatch is still being sent leaves no unhandled rejection', async () => {
      let release!: () => void;
      let sending!: () => void;
      const sendStarted = new Promise<void>((resolve) => (sending = resolve));
      const slow: StepQueue = {
        redeliverAfter: async () => undefined,
        send: () =>
          new Promise<void>((resolve) => {
            release = resolve;
            sending();
          }),
      };
      const { calls, errors, fanOut } = setup({ queue: slow });
      await fanOut.start(request(1, 1));
      await sendStarted;
      await fanOut.stop('run1-root-s1', 'cancelled');
      // A macrotask turn with the released child's promise not awaited yet: Node would flag it here.
      await new Promise((resolve) => setImmediate(resolve));
      release();
      await fanOut.idle();
      expect(calls).toEqual([]);
      expect(errors).toEqual([]);
    });

    it('a duplicate start is a no-op, while running and after the end', async () => {
      const { queue, calls, fanOut } = setup();
      await Promise.all([fanOut.start(request(2, 5)), fanOut.start(request(2, 5))]);
      expect(fanOut.activeExecutions()).toBe(1);
      for (let i = 0; i < 2; i++) {
        const { body } = await queue.receive();
        await fanOut.childFinished(body.taskToken as string, done(body.branchId));
      }
      await fanOut.idle();
      await fanOut.start(request(2, 5));
      await fanOut.idle();

      expect(queue.sent).toBe(2);
      expect(calls.filter((c) => c.task === 'aggregate')).toHaveLength(1);
    });

    it('runs several executions side by side', async () => {
      const { queue, calls, fanOut } = setup();
      await fanOut.start(request(2, 2, 60, 'a-root-s1'));
      await fanOut.start({ ...request(1, 1, 60, 'a-root-s2'), seq: 2 });
      expect(fanOut.activeExecutions()).toBe(2);
      for (let i = 0; i < 3; i++) {
        const { body } = await queue.receive();
        await fanOut.childFinished(body.taskToken as string, done(body.branchId));
      }
      await fanOut.idle();
      expect(calls.map((c) => c.task === 'aggregate' && c.input.seq).sort()).toEqual([1, 2]);
    });

    it('a child whose dispatch fails is recorded as failed with the error name, and the fan-out still aggregates', async () => {
      const failing: StepQueue = {
        redeliverAfter: async () => undefined,
        async send(messages) {
          if (messages.some((m) => m.branchId === 'root.1')) {
            const error = new Error('queue unavailable');
            error.name = 'SQS.ServiceUnavailable';
            throw error;
          }
        },
      };
      const { calls, errors, fanOut } = setup({ queue: failing });
      await fanOut.start(request(2, 2, 1));
      await fanOut.idle();
      const failures = calls.filter((c) => c.task === 'recordChildFailure').map((c) => c.input);
      expect(failures).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ branchId: 'root.1', error: 'SQS.ServiceUnavailable', cause: 'queue unavailable' }),
          expect.objectContaining({ branchId: 'root.0', error: 'States.Timeout' }),
        ]),
      );
      expect(calls.at(-1)?.task).toBe('aggregate');
      expect(errors).toEqual([]);
    });

    it('an Aggregate that fails for good records the parent\'s failure (its Catch), and the execution ends', async () => {
      const { queue, calls, errors, fanOut } = setup({ failAggregate: true });
      await fanOut.start(request(1, 1));
      const { body } = await queue.receive();
      await fanOut.childFinished(body.taskToken as string, done(body.branchId));
      await fanOut.idle();
      // Any task error is retried twice (the tasks are idempotent), then caught.
      expect(calls.map((c) => c.task)).toEqual(['aggregate', 'aggregate', 'aggregate', 'recordFanOutFailure']);
      expect(calls[3].input).toMatchObject({ team: 'blue', runId: 'run1', parentId: 'root', seq: 1, error: 'Error' });
      expect(String((calls[3].input as FanOutFailureInput).cause)).toContain('aggregate exploded');
      expect(errors).toEqual([]);
      expect(fanOut.activeExecutions()).toBe(0);
    });

    it('routes a failed execution to onExecutionError (never an unhandled rejection): RecordFanOutFailure failed too', async () => {
      const { queue, errors, fanOut } = setup({ failAggregate: true, failFanOutRecord: true });
      await fanOut.start(request(1, 1));
      const { body } = await queue.receive();
      await fanOut.childFinished(body.taskToken as string, done(body.branchId));
      await fanOut.idle();
      expect(errors).toHaveLength(1);
      expect(String((errors[0] as Error).message)).toContain('fan-out failure exploded');
      expect(fanOut.activeExecutions()).toBe(0);
    });

    it('a RecordChildFailure failing for good fails the Map: no queued child dispatched after it, the parent\'s failure recorded', async () => {
      const { queue, calls, errors, fanOut } = setup({ failRecord: true });
      await fanOut.start(request(3, 1, 1));
      await queue.receive(); // root.0, never reported: times out after 1 s
      await fanOut.idle();
      // The ASL retries any task error twice (the task is idempotent; a crash must not stall the Map).
      expect(calls.map((c) => c.task)).toEqual(['recordChildFailure', 'recordChildFailure', 'recordChildFailure', 'recordFanOutFailure']);
      // Each attempt is told its retry count ($$.State.RetryCount): only a retry may tell again what it began.
      expect(calls.slice(0, 3).map((c) => (c.input as RecordChildFailureInput).retryCount)).toEqual([0, 1, 2]);
      expect(String((calls[3].input as FanOutFailureInput).cause)).toContain('record exploded');
      expect(queue.sent).toBe(1);
      expect(errors).toEqual([]);
    });

    it('refuses a request the state machine could not run', async () => {
      const { fanOut } = setup();
      await expect(fanOut.start(request(1, 1, 0))).rejects.toBeInstanceOf(ValidationError);
      expect(fanOut.activeExecutions()).toBe(0);
    });

    it('an empty fan-out aggregates at once', async () => {
      const { calls, fanOut } = setup();
      await fanOut.start(request(0, 3));
      await fanOut.idle();
      expect(calls.map((c) => c.task)).toEqual(['aggregate']);
    });


    it('MaxConcurrency 0 dispatches every child at once', async () => {
      const { queue, calls, fanOut } = setup();
      await fanOut.start(request(5, 0));
      // With any limit below 5 the fifth receive would wait for a report that never comes.
      const held: StepMessage[] = [];
      for (let i = 0; i < 5; i++) held.push((await queue.receive()).body);
      for (const m of held) await fanOut.childFinished(m.taskToken as string, done(m.branchId));
      await fanOut.idle();
      expect(calls.map((c) => c.task)).toEqual(['aggregate']);
    });
  });

  /** The batched path: one iteration per batch; the test plays the use cases behind DispatchBatch. */
  describe.concurrent(`batched fan-out contract: ${name}`, () => {
    const batched = (children: number, maxConcurrency: number, timeoutSeconds = 60): FanOutRequest => ({
      ...request(children, maxConcurrency, timeoutSeconds),
      dispatch: 'batched',
    });
    const dispatched = (calls: TaskCall[]) => calls.filter((c) => c.task === 'dispatchBatch').map((c) => c.input as BatchDispatchInput);
    async function until(check: () => boolean): Promise<void> {
      while (!check()) await new Promise((resolve) => setImmediate(resolve));
    }

    it('150 children at 10: one batch, one DispatchBatch with the window, its token released once, Aggregate once', async () => {
      const { queue, calls, errors, fanOut } = setup();
      await fanOut.start(batched(150, 10));
      await until(() => dispatched(calls).length === 1);
      const [batch] = dispatched(calls);
      expect(batch).toEqual({ team: 'blue', runId: 'run1', parentId: 'root', seq: 1, first: 0, count: 150, window: 10, taskToken: expect.any(String) });
      expect(batch.taskToken.startsWith(LOCAL_TOKEN_PREFIX)).toBe(true);
      // The orchestrator sends no child itself: the batch's use cases do.
      expect(queue.sent).toBe(0);
      await fanOut.childFinished(batch.taskToken, done('root.149'));
      await fanOut.childFinished(batch.taskToken, done('root.148')); // released twice: the second finds it closed
      await fanOut.idle();
      expect(calls.map((c) => c.task)).toEqual(['dispatchBatch', 'aggregate']);
      expect(errors).toEqual([]);
      expect(fanOut.activeExecutions()).toBe(0);
    });

    it('honours the batches\' concurrency: 600 children at 2 are three batches of one child at a time, two batches at once', async () => {
      const { calls, errors, fanOut } = setup();
      await fanOut.start(batched(600, 2));
      await until(() => dispatched(calls).length === 2);
      // Let any third iteration that would (wrongly) start do so.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(dispatched(calls).map((b) => [b.first, b.count, b.window])).toEqual([
        [0, 250, 1],
        [250, 250, 1],
      ]);
      await fanOut.childFinished(dispatched(calls)[0].taskToken, done('root.249'));
      await until(() => dispatched(calls).length === 3);
      expect(dispatched(calls)[2]).toMatchObject({ first: 500, count: 100, window: 1 });
      for (const b of dispatched(calls).slice(1)) await fanOut.childFinished(b.taskToken, done(`root.${b.first + b.count - 1}`));
      await fanOut.idle();
      expect(calls.at(-1)?.task).toBe('aggregate');
      expect(calls.filter((c) => c.task === 'aggregate')).toHaveLength(1);
      expect(errors).toEqual([]);
    });

    it('a batch past its timeout goes through RecordBatchFailure with States.Timeout, then Aggregate', async () => {
      const { calls, errors, fanOut } = setup();
      // Two children, both at once: one wave: the batch's timeout is the child timeout twice (2 s).
      await fanOut.start(batched(2, 2, 1));
      await fanOut.idle();
      expect(calls.map((c) => c.task)).toEqual(['dispatchBatch', 'recordBatchFailure', 'aggregate']);
      expect(calls[1].input).toEqual({ team: 'blue', runId: 'run1', parentId: 'root', seq: 1, first: 0, count: 2, error: 'States.Timeout', cause: expect.any(String), retryCount: 0 });
      expect(errors).toEqual([]);
    });

    it('stop releases the waiting batch: no Aggregate, no failure records', async () => {
      const { calls, errors, fanOut } = setup();
      await fanOut.start(batched(20, 5));
      await until(() => dispatched(calls).length === 1);
      await fanOut.stop('run1-root-s1', 'quorum reached');
      await fanOut.idle();
      expect(calls.map((c) => c.task)).toEqual(['dispatchBatch']);
      expect(errors).toEqual([]);
      await fanOut.childFinished(dispatched(calls)[0].taskToken, done('root.19')); // closed: not an error
    });

    it('a DispatchBatch that fails is caught: RecordBatchFailure with its error name, then Aggregate', async () => {
      const { calls, errors, fanOut } = setup({ failDispatchBatch: true });
      await fanOut.start(batched(3, 3));
      await fanOut.idle();
      expect(calls.map((c) => c.task)).toEqual(['dispatchBatch', 'recordBatchFailure', 'aggregate']);
      expect(calls[1].input).toMatchObject({ first: 0, count: 3, error: 'BatchDispatchError' });
      expect(String((calls[1].input as BatchFailureInput).cause)).toContain('dispatch exploded');
      expect(errors).toEqual([]);
    });

    it('a RecordBatchFailure failing for good fails the Map: the parent\'s failure is recorded', async () => {
      const { calls, errors, fanOut } = setup({ failRecord: true });
      await fanOut.start(batched(2, 2, 1));
      await fanOut.idle();
      expect(calls.map((c) => c.task)).toEqual(['dispatchBatch', 'recordBatchFailure', 'recordBatchFailure', 'recordBatchFailure', 'recordFanOutFailure']);
      expect(calls.slice(1, 4).map((c) => (c.input as BatchFailureInput).retryCount)).toEqual([0, 1, 2]);
      expect(String((calls[4].input as FanOutFailureInput).cause)).toContain('record exploded');
      expect(errors).toEqual([]);
    });
  });
}
