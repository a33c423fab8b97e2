import { describe, expect, it } from 'vitest';
import { isInProcessWork, isSyncMark, markKind, readMark, WorkMark } from '../../core/work-mark';

describe('work marks', () => {
  it('keep the stored forms earlier versions wrote (journals and tables read back)', () => {
    expect(WorkMark.step('7f1c-aa')).toBe('7f1c-aa');
    expect(WorkMark.fanOut('root.3')).toBe('fan-out:root.3');
    expect(WorkMark.parent('root.1')).toBe('parent:root.1');
    expect(WorkMark.settle('root.1', 2)).toBe('settle:root.1#2');
    expect(WorkMark.sync(4)).toBe('sync:4');
    expect(WorkMark.dlq('m-9')).toBe('dlq:m-9');
    expect([WorkMark.cancel, WorkMark.start, WorkMark.budget, WorkMark.resume]).toEqual(['cancel', 'start', 'budget', 'resume']);
  });

  it('read back to what was built', () => {
    expect(readMark(WorkMark.step('m-1'))).toEqual({ kind: 'step', messageId: 'm-1' });
    expect(readMark(WorkMark.fanOut('root.0.2'))).toEqual({ kind: 'fan-out', branchId: 'root.0.2' });
    expect(readMark(WorkMark.parent('root'))).toEqual({ kind: 'parent', parentId: 'root' });
    expect(readMark(WorkMark.settle('root.0', 12))).toEqual({ kind: 'settle', parentId: 'root.0', seq: 12 });
    expect(readMark(WorkMark.aggregate('root.0', 12))).toEqual({ kind: 'aggregate', parentId: 'root.0', seq: 12 });
    expect(readMark(WorkMark.sync(3))).toEqual({ kind: 'sync', seq: 3 });
    expect(readMark(WorkMark.dlq('abc'))).toEqual({ kind: 'dlq', messageId: 'abc' });
    expect(readMark(WorkMark.cancel)).toEqual({ kind: 'cancel' });
    expect(readMark(WorkMark.start)).toEqual({ kind: 'start' });
    expect(readMark(WorkMark.budget)).toEqual({ kind: 'budget' });
    expect(readMark(WorkMark.resume)).toEqual({ kind: 'resume' });
    expect(markKind(undefined)).toBeUndefined();
  });

  it('say which work dies with its process (resume tells its ends again)', () => {
    const inProcess = [WorkMark.fanOut('r.1'), WorkMark.parent('r'), WorkMark.settle('r', 1), WorkMark.aggregate('r', 1), WorkMark.dlq('m'), WorkMark.cancel, WorkMark.start, WorkMark.budget];
    for (const mark of inProcess) expect(isInProcessWork(mark), mark).toBe(true);
    for (const mark of [WorkMark.step('m-2'), WorkMark.sync(1), WorkMark.resume, undefined]) expect(isInProcessWork(mark), String(mark)).toBe(false);
    expect(isSyncMark(WorkMark.sync(2))).toBe(true);
    expect(isSyncMark(WorkMark.settle('r', 2))).toBe(false);
  });
});
