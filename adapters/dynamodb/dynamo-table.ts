/**
 * The branch store's requests to its one DynamoDB table, shared by the store's parts
 * (dynamo-branch-store.ts): every request is sent, metered and mapped to core errors here;
 * conditional writes answer undefined when their condition fails. Reads that decide anything
 * are ConsistentRead.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
  type BatchGetCommandOutput,
  type GetCommandOutput,
  type PutCommandOutput,
  type QueryCommandInput,
  type QueryCommandOutput,
  type UpdateCommandOutput,
} from '@aws-sdk/lib-dynamodb';
import { ConflictError, TransientError } from '../../core/errors';
import type { Scope } from '../../core/model';
import type { BlobStore, CostSink } from '../../core/ports';
import { TTL_ATTRIBUTE, type Item, type Key } from './item-codec';
import { Expr } from './expression';
import { mapDynamoError } from './map-dynamo-error';
import { again, withRetries } from '../retry';

export interface DynamoBranchStoreOptions {
  client: DynamoDBDocumentClient | DynamoDBClient;
  tableName: string;
  /** When set, every item gets `expiresAt` = creation time + ttlSeconds (epoch seconds). */
  ttlSeconds?: number;
  /** Clock for `expiresAt`. */
  now?: () => number;
  /** Parallel conditional puts in createBranches. */
  writeConcurrency?: number;
  /** Receives the capacity units every request consumed, by run (the cost meter). */
  meter?: CostSink;
  /**
   * Where values over CLAIM_CHECK_BYTES are kept (S3 in AWS; see item-codec's claim check). Without
   * one, values stay in the items and a value that does not fit is refused as too large.
   */
  blobs?: BlobStore;
}

export type Attributes = Record<string, unknown>;
type StoreCommand = GetCommand | PutCommand | UpdateCommand | QueryCommand | BatchGetCommand;
type OutputOf<C> = C extends GetCommand
  ? GetCommandOutput
  : C extends PutCommand
    ? PutCommandOutput
    : C extends UpdateCommand
      ? UpdateCommandOutput
      : C extends QueryCommand
        ? QueryCommandOutput
        : BatchGetCommandOutput;

export const BATCH_GET_MAX = 100;
const BATCH_GET_ROUNDS = 8;

export class DynamoTable {
  readonly doc: DynamoDBDocumentClient;
  readonly name: string;
  readonly now: () => number;
  readonly writeConcurrency: number;
  readonly blobs: BlobStore | undefined;
  private readonly ttlSeconds: number | undefined;
  private readonly meter: CostSink | undefined;

  constructor(options: DynamoBranchStoreOptions) {
    this.doc =
      options.client instanceof DynamoDBDocumentClient ? options.client : DynamoDBDocumentClient.from(options.client);
    this.name = options.tableName;
    this.ttlSeconds = options.ttlSeconds;
    this.now = options.now ?? Date.now;
    this.writeConcurrency = Math.max(1, options.writeConcurrency ?? 16);
    this.meter = options.meter;
    this.blobs = options.blobs;
  }

  /** Sets the item's `expiresAt` when the store has a TTL. */
  withTtl(item: Item): Item {
    if (this.ttlSeconds !== undefined) item[TTL_ATTRIBUTE] = Math.floor(this.now() / 1000) + this.ttlSeconds;
    return item;
  }

  /** The ` SET expiresAt = if_not_exists(…)` clause of an update that may create its item ('' without a TTL). */
  ttlClause(x: Expr): string {
    const assignment = this.ttlAssignment(x);
    return assignment === undefined ? '' : ` SET ${assignment}`;
  }

  /** `expiresAt = if_not_exists(…)`, for an update that already has a SET clause (undefined without a TTL). */
  ttlAssignment(x: Expr): string | undefined {
    if (this.ttlSeconds === undefined) return undefined;
    return `${x.name(TTL_ATTRIBUTE)} = if_not_exists(${x.name(TTL_ATTRIBUTE)}, ${x.value(Math.floor(this.now() / 1000) + this.ttlSeconds)})`;
  }

  async putIfAbsent(scope: Scope, item: Item, context: string): Promise<boolean> {
    const written = await this.conditional(context, () =>
      this.send(scope,
        new PutCommand({
          TableName: this.name,
          Item: item,
          ConditionExpression: 'attribute_not_exists(PK)',
        }),
      ),
    );
    return written !== undefined;
  }

  async get(scope: Scope, key: Key, context: string, attributes?: string[]): Promise<Attributes | undefined> {
    const x = new Expr();
    const projection = attributes?.map((a) => x.name(a)).join(', ');
    const output = await this.call(context, () =>
      this.send(scope,
        new GetCommand({
          TableName: this.name,
          Key: key,
          ConsistentRead: true,
          ...(projection ? { ProjectionExpression: projection, ExpressionAttributeNames: x.names } : {}),
        }),
      ),
    );
    return output.Item;
  }

  async queryAll(scope: Scope, input: Omit<QueryCommandInput, 'TableName'>, context: string): Promise<Attributes[]> {
    const items: Attributes[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.call(context, () =>
        this.send(scope, new QueryCommand({ ...input, TableName: this.name, ExclusiveStartKey: start })),
      );
      items.push(...(page.Items ?? []));
      start = page.LastEvaluatedKey;
    } while (start);
    return items;
  }

  /** BatchGetItem, ConsistentRead, unprocessed keys asked again (at most BATCH_GET_MAX keys). */
  async batchGet(scope: Scope, keys: Key[], context: string, attributes?: string[]): Promise<Attributes[]> {
    const items: Attributes[] = [];
    let pending: Record<string, unknown>[] = keys as unknown as Record<string, unknown>[];
    if (pending.length === 0) return items;
    const x = new Expr();
    const projection = attributes?.map((a) => x.name(a)).join(', ');
    return withRetries({ attempts: BATCH_GET_ROUNDS, baseMs: 25, maxMs: 2_000 }, async (round, last) => {
      const output = await this.call(context, () =>
        this.send(scope,
          new BatchGetCommand({
            RequestItems: {
              [this.name]: {
                Keys: pending,
                ConsistentRead: true,
                ...(projection ? { ProjectionExpression: projection, ExpressionAttributeNames: x.names } : {}),
              },
            },
          }),
        ),
      );
      const got = output.Responses?.[this.name] ?? [];
      items.push(...got);
      pending = output.UnprocessedKeys?.[this.name]?.Keys ?? [];
      if (pending.length === 0) return items;
      if (last) throw new TransientError(`${context}: ${pending.length} keys still unprocessed after ${round} BatchGetItem rounds`);
      // Unprocessed keys with no progress at all mean throttling: back off before asking again.
      return again(got.length === 0 ? undefined : 0);
    });
  }

  /**
   * Every metered request goes through here: it asks for ReturnConsumedCapacity and hands the units
   * DynamoDB reports to the cost meter, by run. A refused conditional write is billed too (one
   * write unit is counted for it: the service does not report what it charged).
   */
  async send<C extends StoreCommand>(scope: Scope, command: C): Promise<OutputOf<C>> {
    // A new child's item is also written to GSI1 (keys only: one unit). Engines that do not
    // report index units (dynalite) answer INDEXES without a GlobalSecondaryIndexes part: that
    // unit is then counted here, as DynamoDB would bill it.
    const indexed = command instanceof PutCommand && command.input.Item?.GSI1PK !== undefined;
    (command.input as { ReturnConsumedCapacity?: string }).ReturnConsumedCapacity = indexed ? 'INDEXES' : 'TOTAL';
    const write = !(command instanceof GetCommand || command instanceof QueryCommand || command instanceof BatchGetCommand);
    try {
      const output = (await this.doc.send(command as never)) as OutputOf<C>;
      if (this.meter) {
        const consumed = (output as { ConsumedCapacity?: { GlobalSecondaryIndexes?: unknown } }).ConsumedCapacity;
        const units = capacityOf(consumed) + (indexed && consumed && !consumed.GlobalSecondaryIndexes ? 1 : 0);
        this.meter.add(scope, write ? { writeUnits: units } : { readUnits: units });
      }
      return output;
    } catch (error) {
      if (this.meter && write && (error as Error)?.name === 'ConditionalCheckFailedException') this.meter.add(scope, { writeUnits: 1 });
      throw error;
    }
  }

  async call<T>(context: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (error) {
      throw mapDynamoError(error, context);
    }
  }

  /** Runs a conditional write; a failed condition answers undefined instead of throwing. */
  async conditional<T>(context: string, request: () => Promise<T>): Promise<T | undefined> {
    try {
      return await request();
    } catch (error) {
      const mapped = mapDynamoError(error, context);
      if (mapped instanceof ConflictError) return undefined;
      throw mapped;
    }
  }
}

function capacityOf(consumed: unknown): number {
  if (Array.isArray(consumed)) return consumed.reduce((n: number, c) => n + Number(c?.CapacityUnits ?? 0), 0);
  return Number((consumed as { CapacityUnits?: number } | undefined)?.CapacityUnits ?? 0);
}
