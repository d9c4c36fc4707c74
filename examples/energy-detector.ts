/**
 * Example main-thread processor: an energy detector that emits `speech-start`
 * and `speech-end` events (with media time) for every stream it is attached to.
 *
 *   import { createServer, registerProcessor } from 'earshot';
 *   import { energyDetector } from './examples/energy-detector.js';
 *   registerProcessor('energy', energyDetector);
 *   // pipeline sink: { "type": "processor", "name": "energy", "options": { "thresholdDb": -45 } }
 *   server.events$.subscribe((e) => console.log(e.peerId, e.event, e.data));
 *
 * It only reads the RMS the worker measured for each frame, so it costs a few
 * comparisons per 20 ms frame on the main thread.
 */
import { tap } from 'rxjs';
import { speechSegments, type ProcessorFactory } from 'earshot';

export const energyDetector: ProcessorFactory = (context) => {
  const thresholdDb = typeof context.options.thresholdDb === 'number' ? context.options.thresholdDb : -40;
  const hangoverMs = typeof context.options.hangoverMs === 'number' ? context.options.hangoverMs : 300;
  return (frames$) =>
    frames$.pipe(
      speechSegments({ by: 'energy', thresholdDb, hangoverMs }),
      tap((event) => context.emit(event.type, { time: event.time, duration: event.duration })),
    );
};
