/**
 * Keeps a step message invisible for as long as its step runs: the local stand-in for Lambda,
 * whose function timeout is shorter than the queue's visibility timeout, so a step still running
 * never comes back to a second worker, nor reaches the dead-letter queue for being slow.
 *
 * The beats follow the work, not an idle machine's clock. A process starved of CPU runs its
 * timers late and its calls slowly; a fixed beat would then let a message in progress lapse, be
 * received again and again, and end as a "poison message". So each extension is the queue's
 * visibility timeout plus three times the worst lateness seen lately (timers firing late, the
 * extension calls' own round trips, the pollers' turns of the event loop), and the next beat
 * comes at half of what the last one asked for. On a quiet machine that is the queue's timeout,
 * beaten at half of it, as before; a dead process stops beating and its messages come back.
 */
export const MAX_VISIBILITY_SECONDS = 43_200;

/** How late the process has been running lately (a decaying maximum, in milliseconds). */
export class ProcessLag {
  private lagMs = 0;
  private at = Date.now();

  /** Records a delay the process suffered (a timer's lateness, a local call's round trip). */
  observe(lateMs: number): void {
    this.decay();
    if (lateMs > this.lagMs) this.lagMs = lateMs;
  }

  get ms(): number {
    this.decay();
    return this.lagMs;
  }

  /** Halves every 30 s: a burst of load is remembered for a while, not forever. */
  private decay(): void {
    const now = Date.now();
    const elapsed = now - this.at;
    if (elapsed <= 0) return;
    this.lagMs *= 0.5 ** (elapsed / 30_000);
    this.at = now;
  }
}

export class VisibilityHeartbeat {
  constructor(
    private readonly visibilitySeconds: number,
    readonly lag: ProcessLag = new ProcessLag(),
  ) {}

  /** Seconds of invisibility to ask for now (at receive and at each beat). */
  extension(): number {
    // Lateness under 50 ms is the event loop's ordinary noise: a quiet machine asks for the timeout.
    const late = Math.max(0, this.lag.ms - 50);
    return Math.min(MAX_VISIBILITY_SECONDS, Math.ceil(this.visibilitySeconds + (3 * late) / 1000));
  }

  /**
   * Beats `extend` until `release()`: first at once when the process has been late lately (the
   * message may have waited since its receive), else at half the visibility timeout.
   */
  hold(extend: (seconds: number) => Promise<void>): { release(): void } {
    let released = false;
    let timer: NodeJS.Timeout | undefined;
    const schedule = (delayMs: number) => {
      const due = Date.now() + delayMs;
      timer = setTimeout(() => void beat(due), delayMs);
    };
    const beat = async (due: number) => {
      if (released) return;
      const started = Date.now();
      this.lag.observe(started - due);
      const seconds = this.extension();
      await extend(seconds).catch(() => undefined);
      this.lag.observe(Date.now() - started);
      if (!released) schedule((seconds * 1000) / 2);
    };
    schedule(this.lag.ms > (this.visibilitySeconds * 1000) / 10 ? 0 : (this.visibilitySeconds * 1000) / 2);
    return {
      release: () => {
        released = true;
        clearTimeout(timer);
      },
    };
  }
}
