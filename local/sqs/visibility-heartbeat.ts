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
 * comes at a third of what the last one asked for, counted from when it was asked (the queue
 * started that visibility then, not when the reply reached the step): two thirds of each
 * extension are left for a late timer. On a quiet machine that is the queue's timeout, beaten at
 * a third of it; a dead process stops beating and its messages come back.
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

/** A visibility asked of the queue: when (before the request went out) and for how many seconds. */
export interface AskedVisibility {
  at: number;
  seconds: number;
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
   * Beats `extend` until `release()`. `received` is when the message's visibility was asked for
   * (before its receive) and for how long: the first beat is due a third of that after it, at
   * once when the message reached its step later than that.
   */
  hold(extend: (seconds: number) => Promise<void>, received: AskedVisibility = { at: Date.now(), seconds: this.visibilitySeconds }): { release(): void } {
    let released = false;
    let timer: NodeJS.Timeout | undefined;
    const schedule = (asked: AskedVisibility) => {
      const due = asked.at + (asked.seconds * 1000) / 3;
      timer = setTimeout(() => void beat(due), Math.max(0, due - Date.now()));
    };
    const beat = async (due: number) => {
      if (released) return;
      const at = Date.now();
      this.lag.observe(at - due);
      const seconds = this.extension();
      await extend(seconds).catch(() => undefined);
      this.lag.observe(Date.now() - at);
      if (!released) schedule({ at, seconds });
    };
    schedule(received);
    return {
      release: () => {
        released = true;
        clearTimeout(timer);
      },
    };
  }
}
