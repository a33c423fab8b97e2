import { main } from '../../local/cli';
import { captureIo } from './io';

/** Runs the CLI in this process, as `branch-spawner <args>`: its exit code and what it printed. */
export async function runCli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = captureIo();
  const code = await main(args, io);
  return { code, out: io.outText(), err: io.errText() };
}
