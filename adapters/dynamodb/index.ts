/** DynamoDB adapter: the branch store, its table definition and the SDK error mapping. */
export { DynamoBranchStore, type DynamoBranchStoreOptions } from './dynamo-branch-store';
export { createTableIfMissing, tableSchema, GSI1, TTL_ATTRIBUTE } from './table';
export { mapDynamoError } from './map-dynamo-error';
export { MAX_ITEM_BYTES } from './item-codec';
