/** The live tree on a terminal: counts, elapsed time and the tree, redrawn in place. */
import { renderAscii, type TreeBranch } from '../core/tree';

const COLORS: Record<string, string> = {
  PENDING: '\x1b[90m', RUNNING: '\x1b[36m', WAITING: '\x1b[33m', COMPLETED: '\x1b[32m',
  FAILED: '\x1b[31m', TIMED_OUT: '\x1b[35m', CANCELLED: '\x1b[90m',
};

export function progressFrame(branches: readonly TreeBranch[], elapsedMs: number, maxLines = 30, color = true): string {
  const count = (...s: string[]) => branches.filter((b) => s.includes(b.status)).length;
  const head =
    `created ${branches.length} · pending ${count('PENDING')} · running ${count('RUNNING')} · waiting ${count('WAITING')} · ` +
    `done ${count('COMPLETED')} · failed ${count('FAILED', 'TIMED_OUT')} · cancelled ${count('CANCELLED')} · ${(elapsedMs / 1000).toFixed(1)}s`;
  // No branch yet (the run is being created): just the counts, not an empty tree line.
  let lines = branches.length ? renderAscii(branches).split('\n') : [];
  if (lines.length > maxLines) lines = [...lines.slice(0, maxLines - 1), `… ${lines.length - maxLines + 1} more branches`];
  const painted = color
    ? lines.map((l) => l.replace(/\[(\w+)\]/, (m, s: string) => `${COLORS[s] ?? ''}${m}\x1b[0m`))
    : lines;
  return [head, ...painted].join('\n');
}

export class LiveProgress {
  private timer?: NodeJS.Timeout;
  private drawn = 0;
  private busy = false;
  private stopped = false;

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly load: () => Promise<readonly TreeBranch[]>,
    private readonly started: number,
    /** How often the tree is read (a remote API is read less often than the local store). */
    private readonly intervalMs = 200,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
  }

  async stop(final?: readonly TreeBranch[]): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    if (final) this.draw(progressFrame(final, Date.now() - this.started, 200));
  }

  private async tick(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      const branches = await this.load();
      if (!this.stopped) this.draw(progressFrame(branches, Date.now() - this.started, Math.max(10, ((this.out as NodeJS.WriteStream).rows ?? 40) - 4)));
    } catch {
      // the store may be closing at the end of the run; the final frame is drawn by stop()
    } finally {
      this.busy = false;
    }
  }

  private draw(frame: string): void {
    const clear = this.drawn > 0 ? `\x1b[${this.drawn}F\x1b[J` : '';
    this.out.write(`${clear}${frame}\n`);
    this.drawn = frame.split('\n').length;
  }
}
