/**
 * Counts the bytes the container writes to stdout and stderr (Powertools' logs and metrics write
 * there; Lambda ships both to CloudWatch Logs): the cost meter's estimate of log ingestion.
 */
let written = 0;
let counting = false;

function count(stream: NodeJS.WriteStream): void {
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    written += typeof chunk === 'string' ? Buffer.byteLength(chunk) : (chunk as Uint8Array | undefined)?.byteLength ?? 0;
    return write(chunk, ...rest);
  }) as NodeJS.WriteStream['write'];
}

/** Bytes written since the last call (counting starts at the first call). */
export function takeLoggedBytes(): number {
  if (!counting) {
    counting = true;
    count(process.stdout);
    count(process.stderr);
  }
  const bytes = written;
  written = 0;
  return bytes;
}
