/**
 * A BranchStore made of one part per concern of the port (core/ports.ts): the DynamoDB store and
 * the in-memory reference are this class, each with its own parts over its one table. A call is
 * handed to its part as it is (not awaited here: the in-memory parts' check-and-write stays one
 * synchronous stretch), and the methods live on the prototype, so a subclass may wrap one.
 */
import type {
  BranchRecordStore,
  BranchStore,
  ChildSpecStore,
  CostStore,
  EventStore,
  RunStore,
  SyncPointStore,
} from '../core/ports';

export interface BranchStoreParts {
  runs: RunStore;
  branches: BranchRecordStore;
  childSpecs: ChildSpecStore;
  syncPoints: SyncPointStore;
  events: EventStore;
  costs: CostStore;
}

type Args<P, K extends keyof P> = P[K] extends (...args: infer A) => unknown ? A : never;

export class ComposedBranchStore implements BranchStore {
  constructor(protected readonly parts: BranchStoreParts) {}

  // --- runs
  createRun(...a: Args<RunStore, 'createRun'>) { return this.parts.runs.createRun(...a); }
  getRun(...a: Args<RunStore, 'getRun'>) { return this.parts.runs.getRun(...a); }
  finishRun(...a: Args<RunStore, 'finishRun'>) { return this.parts.runs.finishRun(...a); }
  reserveBranches(...a: Args<RunStore, 'reserveBranches'>) { return this.parts.runs.reserveBranches(...a); }
  addRunTokens(...a: Args<RunStore, 'addRunTokens'>) { return this.parts.runs.addRunTokens(...a); }
  claimRunId(...a: Args<RunStore, 'claimRunId'>) { return this.parts.runs.claimRunId(...a); }
  listRunsPage(...a: Args<RunStore, 'listRunsPage'>) { return this.parts.runs.listRunsPage(...a); }

  // --- branches
  createBranches(...a: Args<BranchRecordStore, 'createBranches'>) { return this.parts.branches.createBranches(...a); }
  getBranch(...a: Args<BranchRecordStore, 'getBranch'>) { return this.parts.branches.getBranch(...a); }
  getBranches(...a: Args<BranchRecordStore, 'getBranches'>) { return this.parts.branches.getBranches(...a); }
  getOutcomes(...a: Args<BranchRecordStore, 'getOutcomes'>) { return this.parts.branches.getOutcomes(...a); }
  getStatuses(...a: Args<BranchRecordStore, 'getStatuses'>) { return this.parts.branches.getStatuses(...a); }
  updateBranch(...a: Args<BranchRecordStore, 'updateBranch'>) { return this.parts.branches.updateBranch(...a); }
  transitionBranch(...a: Args<BranchRecordStore, 'transitionBranch'>) { return this.parts.branches.transitionBranch(...a); }
  listBranches(...a: Args<BranchRecordStore, 'listBranches'>) { return this.parts.branches.listBranches(...a); }
  listBranchesPage(...a: Args<BranchRecordStore, 'listBranchesPage'>) { return this.parts.branches.listBranchesPage(...a); }
  listChildren(...a: Args<BranchRecordStore, 'listChildren'>) { return this.parts.branches.listChildren(...a); }

  // --- a wide spawn's child specs
  putChildSpecs(...a: Args<ChildSpecStore, 'putChildSpecs'>) { return this.parts.childSpecs.putChildSpecs(...a); }
  getChildSpecs(...a: Args<ChildSpecStore, 'getChildSpecs'>) { return this.parts.childSpecs.getChildSpecs(...a); }

  // --- sync points
  createSyncPoint(...a: Args<SyncPointStore, 'createSyncPoint'>) { return this.parts.syncPoints.createSyncPoint(...a); }
  getSyncPoint(...a: Args<SyncPointStore, 'getSyncPoint'>) { return this.parts.syncPoints.getSyncPoint(...a); }
  recordChildEnd(...a: Args<SyncPointStore, 'recordChildEnd'>) { return this.parts.syncPoints.recordChildEnd(...a); }
  listCountedChildren(...a: Args<SyncPointStore, 'listCountedChildren'>) { return this.parts.syncPoints.listCountedChildren(...a); }
  countEndedInRange(...a: Args<SyncPointStore, 'countEndedInRange'>) { return this.parts.syncPoints.countEndedInRange(...a); }
  putBatchToken(...a: Args<SyncPointStore, 'putBatchToken'>) { return this.parts.syncPoints.putBatchToken(...a); }
  getBatchToken(...a: Args<SyncPointStore, 'getBatchToken'>) { return this.parts.syncPoints.getBatchToken(...a); }
  claimBatchChild(...a: Args<SyncPointStore, 'claimBatchChild'>) { return this.parts.syncPoints.claimBatchChild(...a); }
  claimAggregation(...a: Args<SyncPointStore, 'claimAggregation'>) { return this.parts.syncPoints.claimAggregation(...a); }
  listOpenSyncPoints(...a: Args<SyncPointStore, 'listOpenSyncPoints'>) { return this.parts.syncPoints.listOpenSyncPoints(...a); }

  // --- the run's stored events and the values they refer to
  appendEvents(...a: Args<EventStore, 'appendEvents'>) { return this.parts.events.appendEvents(...a); }
  listEvents(...a: Args<EventStore, 'listEvents'>) { return this.parts.events.listEvents(...a); }
  getValue(...a: Args<EventStore, 'getValue'>) { return this.parts.events.getValue(...a); }

  // --- cost
  addCost(...a: Args<CostStore, 'addCost'>) { return this.parts.costs.addCost(...a); }
  getCost(...a: Args<CostStore, 'getCost'>) { return this.parts.costs.getCost(...a); }
}
