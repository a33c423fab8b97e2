/**
 * The team's queues: branch steps in two lanes (core/step-lanes.ts), each with the same settings
 * and the same DLQ after MAX_RECEIVE_COUNT failed deliveries, and the DLQ of run requests the
 * trigger could not take. With one step queue, a parent resumed after its fan-in would wait behind
 * every leaf step queued before it once the step-worker's event source is at its maximum
 * concurrency. Made in the BranchSpawner's scope (logical ids unchanged).
 */
import { Duration } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { MAX_RECEIVE_COUNT } from '../core/step-lanes';

export interface SpawnerQueues {
  /** The start lane: a branch's first step (the root, every child the fan-out dispatches). */
  stepQueue: sqs.Queue;
  /** The continue lane: later steps (a parent resumed after its fan-in, the next agent of a hand-off). */
  continueQueue: sqs.Queue;
  stepDlq: sqs.Queue;
  triggerDlq: sqs.Queue;
}

/**
 * An event source queue's visibility must cover its function's timeout: six times it, as AWS
 * advises for SQS sources (the step-worker reads the lanes, the dlq-handler the step DLQ).
 */
export function createQueues(scope: Construct, timeouts: { stepWorker: Duration; dlqHandler: Duration }): SpawnerQueues {
  const stepDlq = new sqs.Queue(scope, 'StepDlq', {
    visibilityTimeout: Duration.seconds(timeouts.dlqHandler.toSeconds() * 6),
    retentionPeriod: Duration.days(14),
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
  });
  const stepQueueProps: sqs.QueueProps = {
    visibilityTimeout: Duration.seconds(timeouts.stepWorker.toSeconds() * 6),
    retentionPeriod: Duration.days(4),
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    deadLetterQueue: { queue: stepDlq, maxReceiveCount: MAX_RECEIVE_COUNT },
  };
  const stepQueue = new sqs.Queue(scope, 'StepQueue', stepQueueProps);
  const continueQueue = new sqs.Queue(scope, 'ContinueQueue', stepQueueProps);
  // Run requests that the trigger could not take (EventBridge delivery or the function's own retries).
  const triggerDlq = new sqs.Queue(scope, 'TriggerDlq', {
    retentionPeriod: Duration.days(14),
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
  });
  return { stepQueue, continueQueue, stepDlq, triggerDlq };
}
