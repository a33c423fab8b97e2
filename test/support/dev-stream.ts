/**
 * Follows a dev server's live lifecycle events (text/event-stream) until `until` accepts one or
 * the stream ends. `ready` resolves once the server says the stream is connected, so a test can
 * start a run without missing its first events.
 */
import type { LifecycleEvent } from '../../core/events';

export interface EventFollow {
  ready: Promise<void>;
  /** The events seen, and whether the stream stopped because `until` accepted one (not because it ended). */
  done: Promise<{ events: LifecycleEvent[]; stopped: boolean; contentType: string | null }>;
}

export function followDevEvents(url: string, until: (event: LifecycleEvent) => boolean): EventFollow {
  const abort = new AbortController();
  let markReady = () => {};
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const done = (async () => {
    const response = await fetch(url, { signal: abort.signal, headers: { accept: 'text/event-stream' } });
    const contentType = response.headers.get('content-type');
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    const events: LifecycleEvent[] = [];
    let buffer = '';
    for (;;) {
      const { value, done: ended } = await reader.read();
      if (ended) return { events, stopped: false, contentType };
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (frame.includes(': connected')) markReady();
        const data = frame.split('\n').find((l) => l.startsWith('data: '));
        if (!frame.includes('event: lifecycle') || !data) continue;
        const event = JSON.parse(data.slice(6)) as LifecycleEvent;
        events.push(event);
        if (until(event)) {
          abort.abort();
          return { events, stopped: true, contentType };
        }
      }
    }
  })();
  return { ready, done };
}
