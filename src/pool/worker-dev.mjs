// Worker bootstrap used only when earshot runs from its TypeScript sources
// (tests, `tsx`): registers tsx in this worker thread, then loads the real entry.
// No top-level await, for the reason worker-entry.ts gives: Piscina require()s
// this file, and the real entry is loaded by import() only.
import { register } from 'tsx/esm/api';

register();
const loading = import('./worker.ts');
loading.catch(() => undefined);

export default async function handleTask(task) {
  return (await loading).default(task);
}
