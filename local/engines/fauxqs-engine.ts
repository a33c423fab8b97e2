/**
 * fauxqs (an in-process SQS emulator) on a random loopback port, with an SQS client pointed at it.
 * We build the app ourselves instead of calling fauxqs' startFauxqs(): that one listens on 0.0.0.0,
 * and a laptop run has no reason to expose a queue to the network.
 */
import { SQSClient } from '@aws-sdk/client-sqs';
import { buildApp } from 'fauxqs';

export const FAUXQS_REGION = 'us-east-1';

export interface FauxqsEngine {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  client: SQSClient;
  close(): Promise<void>;
}

export async function startFauxqs(): Promise<FauxqsEngine> {
  const app = buildApp({ logger: false, defaultRegion: FAUXQS_REGION });
  const endpoint = await app.listen({ host: '127.0.0.1', port: 0 });
  // Queue URLs use the host sqs.<region>.localhost, which need not resolve: an explicit endpoint
  // makes the SDK send every call here whatever the QueueUrl says.
  const client = new SQSClient({
    endpoint,
    region: FAUXQS_REGION,
    credentials: { accessKeyId: 'fauxqs', secretAccessKey: 'fauxqs' },
  });
  let closed: Promise<void> | undefined;
  return {
    endpoint,
    client,
    close() {
      closed ??= (async () => {
        // fauxqs' preClose hook ends pending long polls (they answer "no messages"), then the
        // server drops its sockets; only then the client's keep-alive sockets go.
        await app.close();
        client.destroy();
      })();
      return closed;
    },
  };
}
