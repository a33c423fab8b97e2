import { Writable } from 'node:stream';

/** Collects what a CLI run writes to stdout and stderr. */
export function captureIo() {
  const out: string[] = [];
  const err: string[] = [];
  const sink = (into: string[]) =>
    new Writable({
      write(chunk, _enc, done) {
        into.push(chunk.toString());
        done();
      },
    });
  return { out: sink(out), err: sink(err), outText: () => out.join(''), errText: () => err.join('') };
}
