// bench/handoff.ts: the batch as a Piscina task.
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { work } from './batch-work.mjs';

export default function handle(task) {
  const result = work(task);
  // As the pool's worker returns a batch: the output transferred, not cloned.
  return move({ [transferableSymbol]: [result.output], [valueSymbol]: result });
}
