/**
 * The team's event bus (run requests in, lifecycle events out), its archive for replay, and the
 * rule that hands run requests to the trigger. Made in the BranchSpawner's scope (logical ids unchanged).
 */
import { Duration, Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventTargets from 'aws-cdk-lib/aws-events-targets';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';

/** EventBridge `source` of run requests (lifecycle events use `branch-spawner`; keeping them apart avoids loops). */
export const RUN_REQUESTED_SOURCE = 'branch-spawner.client';
export const RUN_REQUESTED_DETAIL_TYPE = 'RunRequested';

export function createEventBus(scope: Construct, team: string): { eventBus: events.EventBus; archive: events.Archive } {
  const eventBus = new events.EventBus(scope, 'EventBus', { eventBusName: `branch-spawner-${team}` });
  const archive = eventBus.archive('Archive', {
    description: `branch-spawner ${team}: every event on the team bus, for replay`,
    eventPattern: { account: [Stack.of(scope).account] },
    retention: Duration.days(30),
  });
  // CDK writes `KmsKeyIdentifier: ""` when no key is given (aws/aws-cdk#37847), which some
  // Regions refuse at deploy time; without the property the archive uses an AWS owned key.
  (archive.node.defaultChild as events.CfnArchive).addPropertyDeletionOverride('KmsKeyIdentifier');
  return { eventBus, archive };
}

/** Run requests from the bus → the trigger (bounded retries, then the trigger DLQ). */
export function routeRunRequests(
  scope: Construct,
  team: string,
  { eventBus, trigger, triggerDlq }: { eventBus: events.IEventBus; trigger: lambda.IFunction; triggerDlq: sqs.IQueue },
): events.Rule {
  return new events.Rule(scope, 'RunRequestedRule', {
    eventBus,
    description: `branch-spawner ${team}: start a run from a ${RUN_REQUESTED_DETAIL_TYPE} event`,
    eventPattern: { source: [RUN_REQUESTED_SOURCE], detailType: [RUN_REQUESTED_DETAIL_TYPE] },
    targets: [
      new eventTargets.LambdaFunction(trigger, {
        deadLetterQueue: triggerDlq,
        retryAttempts: 2,
        maxEventAge: Duration.hours(2),
      }),
    ],
  });
}
