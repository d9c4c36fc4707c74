/**
 * The `websocket` sinks of a pipeline, opened for one stream: each connects at
 * once (its frames wait in its bounded queue until the connection opens), with
 * its header values resolved from the environment now. A variable removed
 * since the session was admitted (core/pipeline-checks.ts checks them) fails
 * that sink alone.
 */
import type { PeerPipelineEvent } from './loss-accounting.js';
import type { Pipeline } from './pipeline.js';
import { resolveHeaders, WebSocketSink } from '../sinks/websocket-sink.js';

export interface StreamIds {
  session: string;
  peer: string;
  room: string;
}

export function openWebSocketSinks(
  pipeline: Pipeline,
  ids: StreamIds,
  onEvent: (event: PeerPipelineEvent) => void,
  onFailed: (sink: string, error: Error) => void,
): Array<{ branch: number; sink: WebSocketSink }> {
  const opened: Array<{ branch: number; sink: WebSocketSink }> = [];
  pipeline.branches.forEach((b, i) => {
    b.sinks.forEach((sink, k) => {
      if (sink.type !== 'websocket') return;
      const path = `${pipeline.branches.length > 1 || b.name !== 'main' ? `/branches/${b.name}` : ''}/sinks/${k}`;
      let headers: Record<string, string>;
      try {
        headers = resolveHeaders(sink.headers, { pipeline: pipeline.name, path });
      } catch (e) {
        onFailed(`websocket:${b.name}`, e as Error);
        return;
      }
      const ws = new WebSocketSink({
        ...ids,
        pipeline: pipeline.name,
        branch: b.name,
        config: sink,
        headers,
        expected: { sampleRate: b.sampleRate, channels: b.channels },
        onEvent: (type, level, message, data) => onEvent({ type, level, message, data }),
      });
      opened.push({ branch: i, sink: ws });
    });
  });
  return opened;
}
