// Worker bootstrap used only when earshot runs from its TypeScript sources
// (tests, `tsx`): registers tsx in this worker thread, then loads the real entry.
import { register } from 'tsx/esm/api';

register();
const entry = await import('./worker.ts');
export default entry.default;
