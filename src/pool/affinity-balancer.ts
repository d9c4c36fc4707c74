/**
 * Piscina load balancer that pins each "slot" to one worker, so that all tasks
 * of a slot (and with them every stream assigned to it) run in the same thread.
 *
 * Piscina v5 calls the balancer with the task's queue options
 * (`task[Piscina.queueOptionsSymbol]`) and the live workers. It must never return
 * null for a slot task: Piscina would re-queue the task at the tail and frames
 * could reorder. A slot whose worker died is rebound to a worker no other slot
 * holds (the pool's idle spare, or the restarted one); the pool then rebuilds
 * its streams' state there. The pool sends nothing to such a slot until a free
 * worker is ready, so the null below is never returned for a slot task.
 */
import { Piscina } from 'piscina';

type PiscinaWorkerView = { id: number; currentUsage: number; terminating: boolean; destroyed: boolean };
type Balancer = NonNullable<ConstructorParameters<typeof Piscina>[0]>['loadBalancer'];

export interface SlotQueueOptions {
  /** Index of the slot (0 … threads−1) whose worker must run the task. */
  slot: number;
}

/**
 * A task that must run on a worker no slot holds, so that Piscina starts one
 * when there is none (the pool's way to get a worker replaced once Piscina has
 * stopped replacing them by itself; see WorkerPool's #watchWorkerCount).
 */
export interface SpawnQueueOptions {
  spawn: true;
}

export function createAffinityBalancer(): { balancer: Balancer; workerOf(slot: number): number | undefined } {
  const slotWorker = new Map<number, number>(); // slot → worker thread id

  const balancer = ((task: Record<symbol, unknown>, workers: PiscinaWorkerView[]) => {
    const live = workers.filter((w) => !w.terminating && !w.destroyed);
    if (live.length === 0) return null; // nothing to run on yet; Piscina retries when one is ready
    const options = task[Piscina.queueOptionsSymbol] as SlotQueueOptions | SpawnQueueOptions | undefined;
    if (options !== undefined && 'spawn' in options) {
      // Only a free worker; none: null, and Piscina starts one (its pool is below maxThreads) and
      // gives it the task once ready.
      const taken = new Set(slotWorker.values());
      return live.find((w) => !taken.has(w.id)) ?? null;
    }
    if (options === undefined) {
      // Untargeted task (none are sent today): least busy worker.
      return live.reduce((a, b) => (b.currentUsage < a.currentUsage ? b : a));
    }
    const bound = slotWorker.get(options.slot);
    const current = live.find((w) => w.id === bound);
    if (current) return current;
    const taken = new Set(slotWorker.values());
    const candidate =
      live.find((w) => !taken.has(w.id)) ??
      // More slots than live workers (a worker is restarting): share the least loaded one.
      live.reduce((a, b) => (countSlots(slotWorker, b.id) < countSlots(slotWorker, a.id) ? b : a));
    slotWorker.set(options.slot, candidate.id);
    return candidate;
  }) as unknown as Balancer;

  return { balancer, workerOf: (slot) => slotWorker.get(slot) };
}

function countSlots(map: Map<number, number>, workerId: number): number {
  let n = 0;
  for (const id of map.values()) if (id === workerId) n++;
  return n;
}
