/**
 * BranchStore on one DynamoDB table (see docs/dynamodb-schema.md). Every state change is a
 * single conditional write; nothing uses transactions (dynalite has none, and the fan-in only
 * ever needs one item to change atomically). Reads that decide anything are ConsistentRead.
 *
 * One part per concern of the port, over the table's shared requests (dynamo-table.ts): runs,
 * branches, a wide spawn's child specs, sync points (their sharded fan-in: dynamo-fan-in.ts),
 * the run's stored events, its cost record. Items are encoded in item-codec.ts.
 */
import { ComposedBranchStore } from '../composed-branch-store';
import { DynamoBranches } from './dynamo-branches';
import { DynamoChildSpecs } from './dynamo-child-specs';
import { DynamoCosts } from './dynamo-costs';
import { DynamoEvents } from './dynamo-events';
import { DynamoRuns } from './dynamo-runs';
import { DynamoSyncPoints } from './dynamo-sync-points';
import { DynamoTable, type DynamoBranchStoreOptions } from './dynamo-table';

export type { DynamoBranchStoreOptions } from './dynamo-table';

export class DynamoBranchStore extends ComposedBranchStore {
  constructor(options: DynamoBranchStoreOptions) {
    const table = new DynamoTable(options);
    super({
      runs: new DynamoRuns(table),
      branches: new DynamoBranches(table),
      childSpecs: new DynamoChildSpecs(table),
      syncPoints: new DynamoSyncPoints(table),
      events: new DynamoEvents(table),
      costs: new DynamoCosts(table),
    });
  }
}
