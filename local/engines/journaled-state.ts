/**
 * What the journal tier keeps in its journal (local/engines/journal.ts), as two parts:
 *
 * - `table`: every item the in-memory branch store puts, whole (the store's items are the very
 *   items the DynamoDB store writes; string sets are written as JSON arrays, the items have no
 *   other arrays). Replayed in order, the last put of a key wins.
 * - `queues`: for every queue, each message sent (`s`), each receive's new receive count (`r`:
 *   maxReceiveCount and the dead-letter redrive hold across a restart), each delete (`d`) and each
 *   move to the dead-letter queue (`m`). Visibility is not kept: after a restart every message
 *   not deleted is visible again, as an in-flight message of a dead consumer is once its
 *   visibility timeout runs out.
 *
 * The store and the queues keep all their logic; they only tell the journal what changed, before
 * the change is made (MemoryBranchStore's `onPut`, MemorySqsQueue's `journal`).
 */
import type { MemoryBranchStore } from '../../adapters/memory/memory-branch-store';
import type { Item, ItemValue } from '../../adapters/dynamodb/item-codec';
import { BranchSpawnerError } from '../../core/errors';
import type { Journal } from './journal';
import type { KeptMessage, MemorySqsQueue, QueueJournal } from './memory-sqs';

export const TABLE_PART = 'table';
export const QUEUES_PART = 'queues';

type JsonItem = Record<string, Exclude<ItemValue, Set<string>> | string[]>;

/** Sets become arrays (the only arrays an item has), everything else is kept as is. */
export function itemToJson(item: Item): JsonItem {
  const json: JsonItem = {};
  for (const name in item) {
    const value = item[name];
    json[name] = value instanceof Set ? [...value] : value;
  }
  return json;
}

export function itemFromJson(json: JsonItem): Item {
  const item: Item = {};
  for (const name in json) {
    const value = json[name];
    item[name] = Array.isArray(value) ? new Set(value) : value;
  }
  return item;
}

/**
 * Registers the store's table with the journal and answers the `onPut` to build the store with.
 * The store itself is given afterwards (`attach`), before the journal is opened.
 */
export function journalTable(journal: Journal): { onPut: (item: Item) => void; attach(store: MemoryBranchStore): void } {
  let store: MemoryBranchStore | undefined;
  const storeOf = () => store ?? failUnattached(TABLE_PART);
  const append = journal.register(TABLE_PART, {
    replay: (record) => storeOf().restore([itemFromJson(record as JsonItem)]),
    snapshot: function* () {
      for (const item of storeOf().items()) yield itemToJson(item);
    },
  });
  return {
    onPut: (item) => append(itemToJson(item)),
    attach: (s) => void (store = s),
  };
}

type QueueRecord =
  | ['s', string, KeptMessage]
  | ['r', string, string, number, number]
  | ['d', string, string]
  | ['m', string, string, string];

/**
 * Registers the queues with the journal and answers the QueueJournal to build them with; the
 * queues are given afterwards (`attach`), before the journal is opened.
 */
export function journalQueues(journal: Journal): { journal: QueueJournal; attach(queues: MemorySqsQueue[]): void } {
  const queues = new Map<string, MemorySqsQueue>();
  /** While replaying: queue → message id → message, in the order sent. */
  const kept = new Map<string, Map<string, KeptMessage>>();
  const keptIn = (queue: string) => {
    let messages = kept.get(queue);
    if (!messages) kept.set(queue, (messages = new Map()));
    return messages;
  };
  const append = journal.register(QUEUES_PART, {
    replay(record) {
      const r = record as QueueRecord;
      const messages = keptIn(r[1]);
      if (r[0] === 's') {
        messages.set(r[2].messageId, r[2]);
      } else if (r[0] === 'r') {
        const message = messages.get(r[2]);
        if (message) Object.assign(message, { receiveCount: r[3], firstReceivedAt: r[4] });
      } else if (r[0] === 'd') {
        messages.delete(r[2]);
      } else if (r[0] === 'm') {
        const message = messages.get(r[2]);
        if (!message) return;
        messages.delete(r[2]);
        // The receive that moved it counts, as the live queue's does (journals written before
        // kept no count here: theirs start again from 1).
        keptIn(r[3]).set(r[2], { ...message, receiveCount: message.receiveCount + 1 });
      } else {
        throw new BranchSpawnerError(`unknown queue record ${JSON.stringify(record).slice(0, 100)}`);
      }
    },
    replayed() {
      for (const [name, messages] of kept) {
        const queue = queues.get(name);
        // A queue this version no longer has: its messages cannot be delivered anywhere.
        if (!queue) throw new BranchSpawnerError(`the journal keeps messages of a queue named ${name}, which is not one of this runtime's queues`);
        queue.restore(messages.values());
      }
      kept.clear();
    },
    snapshot: function* () {
      for (const queue of queues.values()) for (const message of queue.messages()) yield ['s', queue.name, message];
    },
  });
  return {
    journal: {
      sent: (queue, messages) => append(...messages.map((m): QueueRecord => ['s', queue, m])),
      received: (queue, id, count, firstReceivedAt) => append(['r', queue, id, count, firstReceivedAt]),
      deleted: (queue, id) => append(['d', queue, id]),
      deadLettered: (queue, id, deadLetterQueue) => append(['m', queue, id, deadLetterQueue]),
    },
    attach(list) {
      for (const queue of list) queues.set(queue.name, queue);
    },
  };
}

function failUnattached(part: string): never {
  throw new BranchSpawnerError(`journal part ${part} was used before its state was attached`);
}
