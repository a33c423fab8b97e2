/**
 * The rehearsal's AWS endpoint with one caller (access key `WORKERKEY`, the step worker) and a
 * stand-in S3 answering `object <url>` to every request: for tests of the endpoint itself, and
 * (with `handlers`, e.g. `invokeLambda`) for tests that need a local endpoint speaking an AWS API.
 */
import type { EngineDispatch } from '../../local/engines/in-process-transport';
import { AwsEndpoint, type EndpointHandlers } from '../../local/rehearsal/aws-endpoint';

export function startS3Endpoint(authorize: EndpointHandlers['authorize'] = () => undefined, handlers: Partial<EndpointHandlers> = {}): Promise<AwsEndpoint> {
  const s3: EngineDispatch = async (request) => ({ statusCode: 200, headers: {}, body: Buffer.from(`object ${request.url}`) });
  return AwsEndpoint.start({
    callerOf: (key) => (key === 'WORKERKEY' ? { principal: 'step-worker', roleLogicalId: 'WorkerRole' } : undefined),
    authorize,
    dynamodbTableArn: (name) => name,
    sqsQueueArn: (url) => url,
    dynamodb: s3,
    sqs: s3,
    s3,
    partition: 'aws',
    json: {},
    invokeLambda: async () => ({ payload: null }),
    describeStacks: () => [],
    bedrock: () => {
      throw new Error('no bedrock');
    },
    ...handlers,
  });
}
