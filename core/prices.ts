/**
 * The dated price table the cost meter and the bench price with (us-east-1 list prices, as
 * published; free tiers ignored; the agents themselves excluded). Every price is in dollars per
 * million of its unit.
 */
export interface Price {
  usdPerMillion: number;
  unit: string;
  source: string;
  date: string;
}

export type PriceName =
  | 'dynamodbWriteRequestUnit'
  | 'dynamodbReadRequestUnit'
  | 'sqsRequest'
  | 'stepFunctionsStandardTransition'
  | 'eventBridgeCustomEvent'
  | 'lambdaRequest'
  | 'lambdaArmGbSecond'
  | 'cloudWatchLogsIngestedGb'
  | 'lambdaDurableOperation'
  | 'lambdaDurableDataWrittenGb';

export interface PriceTable {
  region: string;
  note: string;
  prices: Record<PriceName, Price>;
}

export const PRICES: PriceTable = {
  region: 'us-east-1',
  note: 'List prices as published by AWS, not re-verified here (no browsing from the bench machine). Free tiers are ignored. The agents themselves are excluded (a lambda agent is its own function; a model is billed by its provider).',
  prices: {
    dynamodbWriteRequestUnit: {
      usdPerMillion: 0.625,
      unit: 'on-demand write request unit (1 KB of item per write; GSI writes billed the same)',
      source: 'https://aws.amazon.com/dynamodb/pricing/on-demand/',
      date: 'price in effect since 2024-11-01 (50% on-demand cut), as published, not re-verified here; corroborated by https://airbyte.com/data-engineering-resources/dynamodb-pricing (2025-07-21)',
    },
    dynamodbReadRequestUnit: {
      usdPerMillion: 0.125,
      unit: 'on-demand read request unit (4 KB of item per strongly consistent read)',
      source: 'https://aws.amazon.com/dynamodb/pricing/on-demand/',
      date: 'price in effect since 2024-11-01 (50% on-demand cut), as published, not re-verified here; corroborated by https://airbyte.com/data-engineering-resources/dynamodb-pricing (2025-07-21)',
    },
    sqsRequest: {
      usdPerMillion: 0.4,
      unit: "standard queue request; every 64 KB chunk of a request's payload is one request",
      source: 'https://aws.amazon.com/sqs/pricing/',
      date: 'as published (2025), not re-verified here',
    },
    stepFunctionsStandardTransition: {
      usdPerMillion: 25,
      unit: 'Standard workflow state transition ($0.025 per 1,000); retries count, Inline Map iterations themselves do not',
      source: 'https://aws.amazon.com/step-functions/pricing/ ; counting rules: https://docs.aws.amazon.com/step-functions/latest/dg/concepts-transitions.html',
      date: 'as published (2025), not re-verified here',
    },
    eventBridgeCustomEvent: {
      usdPerMillion: 1,
      unit: 'custom event published with PutEvents (per 64 KB chunk of an entry)',
      source: 'https://aws.amazon.com/eventbridge/pricing/',
      date: 'as published (2025), not re-verified here',
    },
    lambdaRequest: {
      usdPerMillion: 0.2,
      unit: 'Lambda invocation (an SQS event source batch of up to 10 messages is one)',
      source: 'https://aws.amazon.com/lambda/pricing/',
      date: 'as published (2025), not re-verified here',
    },
    lambdaArmGbSecond: {
      usdPerMillion: 13.3334,
      unit: 'Lambda duration on arm64 ($0.0000133334 per GB-second, first 7.5 billion GB-seconds a month): billed duration rounded up to 1 ms × configured memory',
      source: 'https://aws.amazon.com/lambda/pricing/',
      date: 'as published (2025), not re-verified here',
    },
    cloudWatchLogsIngestedGb: {
      usdPerMillion: 500_000,
      unit: 'GB of log data ingested into CloudWatch Logs, standard class ($0.50 per GB)',
      source: 'https://aws.amazon.com/cloudwatch/pricing/',
      date: 'as published (2025), not re-verified here',
    },
    lambdaDurableOperation: {
      usdPerMillion: 8,
      unit: 'Lambda durable functions operation (a step, a wait, a map item: each checkpointed operation); only for the comparison in docs/performance.md',
      source: 'https://aws.amazon.com/lambda/pricing/ (durable functions, announced 2025-12)',
      date: 'as published (2025-12), not re-verified here',
    },
    lambdaDurableDataWrittenGb: {
      usdPerMillion: 250_000,
      unit: 'GB of checkpoint data a durable function writes ($0.25 per GB); only for the comparison in docs/performance.md',
      source: 'https://aws.amazon.com/lambda/pricing/ (durable functions, announced 2025-12)',
      date: 'as published (2025-12), not re-verified here',
    },
  },
};
