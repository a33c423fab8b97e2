/** Event ids: made from what an event is about, so a change told again has the id it had. */
import { describe, expect, it } from 'vitest';
import { branchEvent, eventId, retryEvent, runEvent, syncPointEvent, toolCalledEvent } from '../../core/events';
import { detailOf, syncPointDetail } from '../support/events';

const scope = { team: 'research', runId: 'run-1' };
const branch = { ...scope, id: 'root.1', parentId: 'root', agent: 'A', type: 'SIMPLE' as const, depth: 1, status: 'COMPLETED' as const };
const record = { tool: 't', kind: 'module' as const, status: 'ok' as const, durationMs: 1, argumentBytes: 1, outputBytes: 1 };

describe('eventId', () => {
  it('is the same for the same change whenever it is told, whatever else the event says', () => {
    expect(branchEvent('BranchCompleted', branch, 1).eventId).toBe(branchEvent('BranchCompleted', { ...branch, result: 'other' }, 999).eventId);
    expect(runEvent('RunStarted', scope, 1, detailOf('RunStarted')).eventId).toBe(runEvent('RunStarted', scope, 2, detailOf('RunStarted', { name: 'x' })).eventId);
    expect(syncPointEvent(scope, 'root', 2, 1, syncPointDetail()).eventId).toBe(syncPointEvent(scope, 'root', 2, 5, syncPointDetail({ outcome: 'fail', reason: 'another' })).eventId);
    expect(eventId(scope, 'BranchCreated', 'root')).toMatch(/^[0-9a-f]{32}$/);
  });

  it('differs between any two different changes', () => {
    const message = { ...scope, branchId: 'root.1', step: 2 };
    const ids = [
      runEvent('RunStarted', scope, 1, detailOf('RunStarted')),
      runEvent('RunCompleted', scope, 1, detailOf('RunCompleted')),
      runEvent('RunStarted', { ...scope, runId: 'run-2' }, 1, detailOf('RunStarted')),
      runEvent('RunStarted', { ...scope, team: 'other' }, 1, detailOf('RunStarted')),
      branchEvent('BranchCreated', branch, 1),
      branchEvent('BranchCompleted', branch, 1),
      branchEvent('BranchCompleted', { ...branch, id: 'root.2' }, 1),
      syncPointEvent(scope, 'root', 1, 1, syncPointDetail()),
      syncPointEvent(scope, 'root', 2, 1, syncPointDetail()),
      syncPointEvent(scope, 'root.1', 1, 1, syncPointDetail()),
      toolCalledEvent(branch, 2, 0, record, 1),
      toolCalledEvent(branch, 2, 1, record, 1),
      toolCalledEvent(branch, 3, 0, record, 1),
      retryEvent(message, 1, { attempt: 1, delaySeconds: 1, error: 'x' }),
      retryEvent(message, 1, { attempt: 2, delaySeconds: 1, error: 'x' }),
      retryEvent({ ...message, step: 3 }, 1, { attempt: 1, delaySeconds: 1, error: 'x' }),
    ].map((e) => e.eventId);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
