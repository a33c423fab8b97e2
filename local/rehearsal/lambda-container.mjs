/**
 * One warm Lambda container of the rehearsal (a worker thread): loads the function's bundled
 * asset once (module state lives as long as the container), then runs one invocation at a time,
 * as Lambda does. The host (function-host.ts) gives it the function's environment, enforces the
 * timeout by terminating the thread, and builds the events.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';

const { handlerFile, handlerName, functionName, memorySize, region, account } = workerData;
let loaded;

function errorShape(error) {
  const e = error instanceof Error ? error : new Error(String(error));
  return { errorType: e.name || 'Error', errorMessage: e.message, trace: String(e.stack ?? '').split('\n').slice(0, 20) };
}

/**
 * What the invocation used of this container (thread): its isolate's heap and off-heap memory
 * after it, and the time its event loop was busy (CPU work, not waits) during it. For sizing
 * the function's memory (bench/worker-size.ts); a thread's RSS cannot be told from the process's.
 */
function usageSince(elu) {
  const m = process.memoryUsage();
  return { busyMs: performance.eventLoopUtilization(elu).active, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers };
}

parentPort.on('message', async ({ id, event, deadline, requestId, traceHeader }) => {
  const elu = performance.eventLoopUtilization();
  // Lambda sets the invocation's trace header in the environment; the AWS SDK copies it onto
  // every request the function sends (recursion.ts).
  process.env._X_AMZN_TRACE_ID = traceHeader;
  try {
    loaded ??= import(pathToFileURL(handlerFile).href);
    const module = await loaded;
    const handler = module[handlerName];
    if (typeof handler !== 'function') throw new Error(`${handlerFile} exports no function ${handlerName}`);
    const context = {
      functionName,
      functionVersion: '$LATEST',
      invokedFunctionArn: `arn:aws:lambda:${region}:${account}:function:${functionName}`,
      memoryLimitInMB: String(memorySize),
      awsRequestId: requestId,
      logGroupName: `/aws/lambda/${functionName}`,
      logStreamName: `rehearsal/${requestId}`,
      callbackWaitsForEmptyEventLoop: true,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      done() {},
      fail() {},
      succeed() {},
    };
    const result = await handler(event, context);
    parentPort.postMessage({ id, ok: true, result: result === undefined ? null : JSON.parse(JSON.stringify(result)), usage: usageSince(elu) });
  } catch (error) {
    parentPort.postMessage({ id, ok: false, error: errorShape(error), usage: usageSince(elu) });
  }
});
