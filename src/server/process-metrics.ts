/**
 * Node's standard process metrics (prom-client's default metrics: CPU, memory, event-loop lag,
 * GC, handles), collected once per process and merged into each server's registry.
 *
 * Why once: `collectDefaultMetrics` starts an event-loop-delay monitor (a native timer) and a GC
 * observer that prom-client never stops. Called per server, an application that creates and
 * closes servers kept two of them running for every server it had ever made. The figures are
 * the process's anyway; the event-loop lag histogram restarts at each scrape of any server of
 * the process.
 */
import client from 'prom-client';
import { LOOP_DELAY_SAMPLE_MS } from '../core/monitoring.js';

let shared: client.Registry | undefined;

/** The process's default metrics, started on first use. */
export function processMetrics(): client.Registry {
  if (!shared) {
    shared = new client.Registry();
    // At twice the core's own event-loop sampling interval (see core.sampleLoopDelayFromNow).
    client.collectDefaultMetrics({ register: shared, eventLoopMonitoringPrecision: 2 * LOOP_DELAY_SAMPLE_MS });
  }
  return shared;
}

/** `own` with the process's default metrics: what a `/metrics` route exposes. Register every metric of `own` first. */
export function withProcessMetrics(own: client.Registry): client.Registry {
  return client.Registry.merge([processMetrics(), own]);
}
