/**
 * Example worker stage: a DC blocker (one-pole high-pass, y[n] = x[n] − x[n−1] + R·y[n−1]).
 * Cheap microphones and some sound cards add a constant offset that wastes
 * headroom and upsets level meters and VAD; this removes it.
 *
 * Load it in every worker, then use it by type in pipelines or operators:
 *   createServer({ stageModules: ['examples/dc-blocker-stage.js'], pipeline: … { "type": "dc-blocker", "cutoffHz": 20 } … })
 *   await server.registerStageModule('examples/dc-blocker-stage.js');
 *   frames$.pipe(inWorkers(stage('dc-blocker', { cutoffHz: 10 }), denoise()))
 *
 * Plain JavaScript (ES module) so workers load it without a TypeScript loader;
 * the JSDoc types check it against earshot's stage contract.
 */

/** @type {import('earshot').CustomStage} */
const dcBlocker = {
  type: 'dc-blocker',
  /**
   * @param {import('earshot').StageSpec} options `{ cutoffHz?: number }`, 1–200 Hz, default 20
   * @param {import('earshot').AudioFormat} input
   * @returns {import('earshot').Stage}
   */
  create(options, input) {
    for (const key of Object.keys(options)) {
      if (key !== 'type' && key !== 'cutoffHz') throw new TypeError(`dc-blocker: unknown option "${key}"; allowed: cutoffHz`);
    }
    const cutoffHz = options.cutoffHz ?? 20;
    if (typeof cutoffHz !== 'number' || !(cutoffHz >= 1 && cutoffHz <= 200)) {
      throw new RangeError(`dc-blocker: option "cutoffHz" must be a number from 1 to 200, got ${JSON.stringify(cutoffHz)}`);
    }
    const channels = input.channels;
    const r = Math.exp((-2 * Math.PI * cutoffHz) / input.sampleRate);
    const lastIn = new Float64Array(channels);
    const lastOut = new Float64Array(channels);
    return {
      output: { ...input },
      process(chunk) {
        const d = chunk.data;
        for (let i = 0; i < d.length; i += channels) {
          for (let c = 0; c < channels; c++) {
            const x = d[i + c];
            const y = x - lastIn[c] + r * lastOut[c];
            lastIn[c] = x;
            lastOut[c] = y;
            d[i + c] = y;
          }
        }
        // A decayed tail is flushed to exact 0 (subnormal floats are ~100× slower), so the filter comes to rest.
        for (let c = 0; c < channels; c++) if (Math.abs(lastOut[c]) < 1e-30) lastOut[c] = 0;
        return chunk;
      },
      // Optional: a pause the stream's input filled with zeros (DTX) may skip this stage once it is at
      // rest, because zeros in then give zeros out and leave the state as it is.
      skipSilence() {
        for (let c = 0; c < channels; c++) if (lastIn[c] !== 0 || lastOut[c] !== 0) return false;
        return true;
      },
      close() {},
    };
  },
};

export default dcBlocker;
