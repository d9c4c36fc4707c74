/**
 * The context a processor gets for one stream, as a sink or as a stage: the
 * stream's ids, its options, `emit` to publish events, and the client's data
 * channel (`messages$`, `send`) while the processor runs. One builder for
 * both, so a processor sees the same thing wherever a pipeline places it.
 */
import { EMPTY, takeWhile } from 'rxjs';
import type { ProcessorClientLink, ProcessorContext, ProcessorEvent } from '../sinks/processors.js';

export interface ProcessorContextSource {
  peer: string;
  room: string;
  session: string;
  /** Where `emit` publishes (never throws into the processor). */
  onProcessorEvent(event: ProcessorEvent): void;
  /** The client's data channel; none: no messages, and `send` answers false. */
  client?: ProcessorClientLink;
}

/**
 * The context of processor `name` on `branch`. `running()` says whether it
 * still runs: a detached or failed processor hears no more messages and sends
 * nothing; `failed` reports a message handler of its that threw.
 */
export function processorContext(
  source: ProcessorContextSource,
  name: string,
  branch: string,
  options: Readonly<Record<string, unknown>>,
  state: { running(): boolean; failed(error: Error): void },
): ProcessorContext {
  const { peer, room, session, client } = source;
  return {
    peerId: peer,
    roomId: room,
    sessionId: session,
    branch,
    options,
    emit: (event, data) => {
      try {
        source.onProcessorEvent({ peerId: peer, roomId: room, sessionId: session, processor: name, event: String(event), data, at: Date.now() });
      } catch {
        // an event listener's failure is not the processor's
      }
    },
    messages$: client ? client.messages$(name, (e) => state.failed(e)).pipe(takeWhile(() => state.running())) : EMPTY,
    send: (data) => state.running() && client !== undefined && client.send(name, data),
  };
}
