/**
 * EventPublisher for the embedded runtime: lifecycle events go to in-process subscribers
 * (the live tree, the --trace sink, tests). A subscriber that throws or rejects is reported to
 * `onSubscriberError` and never breaks publishing nor the other subscribers.
 */
import type { LifecycleEvent } from '../../core/events';
import type { EventPublisher } from '../../core/ports';

export type EventSubscriber = (event: LifecycleEvent) => void | Promise<void>;

export interface LocalEventBusOptions {
  /** Default: console.error. */
  onSubscriberError?(error: unknown, event: LifecycleEvent): void;
}

export class LocalEventBus implements EventPublisher {
  private readonly subscribers = new Set<EventSubscriber>();
  private readonly onSubscriberError: (error: unknown, event: LifecycleEvent) => void;

  constructor(options: LocalEventBusOptions = {}) {
    this.onSubscriberError =
      options.onSubscriberError ?? ((error, event) => console.error(`event subscriber failed on ${event.type}:`, error));
  }

  /** Returns the unsubscribe function. */
  subscribe(subscriber: EventSubscriber): () => void {
    // Wrapped so the same function subscribed twice gets each event twice, and unsubscribes once.
    const entry: EventSubscriber = (event) => subscriber(event);
    this.subscribers.add(entry);
    return () => {
      this.subscribers.delete(entry);
    };
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /**
   * Delivers each event, in order, to the subscribers present when it is published, and resolves
   * once they have all handled it (async subscribers are awaited: ordering and back-pressure).
   */
  async publish(events: LifecycleEvent[]): Promise<void> {
    for (const event of events) {
      const pending: Promise<void>[] = [];
      for (const subscriber of [...this.subscribers]) {
        try {
          const result = subscriber(event);
          if (result && typeof result.then === 'function') {
            pending.push(Promise.resolve(result).catch((error: unknown) => this.report(error, event)));
          }
        } catch (error) {
          this.report(error, event);
        }
      }
      if (pending.length) await Promise.all(pending);
    }
  }

  private report(error: unknown, event: LifecycleEvent): void {
    try {
      this.onSubscriberError(error, event);
    } catch {
      // The error reporter itself failing must not break publishing either.
    }
  }
}
