/**
 * Live memory of this process, for tests that bound what something holds:
 * measured after garbage collection, not as the heap happens to be.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | undefined;

/**
 * Bytes still reachable (JS heap and external buffers) after a full collection. V8 frees
 * unreachable buffers' memory after a collection, in the background: a second one finds it done.
 */
export async function liveBytes(): Promise<number> {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
  await new Promise((resolve) => setTimeout(resolve, 0));
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}
