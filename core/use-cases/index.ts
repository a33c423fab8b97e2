export * from './deps';
export { startRun, type StartRunInput, type StartRunResult } from './start-run';
export { executeStep, type StepOutcome, type Delivery } from './execute-step';
export { recordChildFailure, recordBatchFailure, aggregateSyncPoint, recordFanOutFailure, fanOutTasks, lateBoundTasks } from './fan-out-tasks';
export { dispatchBatch } from './fan-out-batch';
export { cancelRun } from './cancel-run';
export { endBranch, tellEnd, cancelChildren, type BranchEnd } from './end-branch';
export { settleSyncPoint } from './sync-point';
export { failPoisonedStep, resumeRun, type PoisonDelivery, type PoisonOutcome, type ResumeReport } from './recovery';
