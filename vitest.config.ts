import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * Two groups, one after the other:
 * - `unit`: tests without live media (DSP on fixtures, pipeline language, docs, the packed
 *   package, the CLI's checks). They do not measure anything against wall-clock time, so
 *   they run two files at a time.
 * - `media`: everything that streams real audio over loopback WebRTC, runs servers, workers
 *   under faults, Chromium, Docker or Redis. On a 2-core machine these must not compete with
 *   each other for the CPU, so they run one file at a time, after the unit group.
 */
const UNIT = [
  'test/dsp/**/*.test.ts',
  'test/media/**/*.test.ts',
  'test/wasm/**/*.test.ts',
  'test/docs/**/*.test.ts',
  'test/package/**/*.test.ts',
  'test/cli/**/*.test.ts',
  'test/helpers/**/*.test.ts',
  'test/errors.test.ts',
  'test/layering.test.ts',
  // Servers and workers without live media or timing: options, errors, routes, offers answered but never connected.
  'test/server/{ice-server-links,port-in-use,logging,server-options,trust-proxy,dashboard-route,connection-limit,client-address,forwarded-header}.test.ts',
  'test/pipeline/{pipeline,pipeline-builder,pipeline-properties,pipeline-registry,record-names,frame-operators,operators,peer-pipeline,loss-at-end,processor-stages,custom-stage-format,json-text,replace-file}.test.ts',
  'test/rtc/{sdp-offer,rtp-ingest,ice-servers,werift-rtp-header,werift-receiver,rtcp-reports,dtx-answer,aes128-gcm}.test.ts',
  'test/sinks/{audio-socket,file-size-limit,record-sink,recording-preflight,recordings-directory,s16-recording,wav-file-writer,wav-file-writer-faults,ogg-opus-writer,processors,wav-repair}.test.ts',
  'test/client/{wav-source,wav-stream,audio-sender,whip-client,shared-frames}.test.ts',
  'test/core/{listeners,subscriber-guard}.test.ts',
  'test/cluster/{placement,compose-file,cluster-options}.test.ts',
  'test/pool/{batch-codec,slot-placement,stage-modules,worker-entry,quiet-hold,spare-outputs,cpu-quota}.test.ts',
  'test/facade/webrtc-handler-options.test.ts',
];

/**
 * Builds dist/ first where it is older than the sources (test/global-setup.ts says what runs from it).
 *
 * `isolate: false`: the files of a worker share one process and one module graph, instead of a
 * new process and a new import of earshot (and werift) each. That took the whole run from about
 * 1,120 s to 920 s on the 2-core machine. So a test must leave nothing process-wide behind:
 * close what it starts, unregister what it registers with `registerProcessor`, restore what it
 * patches by hand, and read process-wide counters as differences, or counts of open resources
 * once they are steady (an earlier file's sockets may still be closing). vitest restores
 * `vi.spyOn` spies itself after each file.
 */
const shared = { testTimeout: 120_000, hookTimeout: 60_000, globalSetup: ['test/global-setup.ts'], isolate: false };

/**
 * `import … from 'earshot'` (the examples import it as a user's copy of them would) is the
 * package's own entry, src/index.ts, as the tests' other imports are: Node's self-reference
 * would resolve it to dist/, a build that may be missing or older than the sources.
 * (tsc resolves it to src/ by itself: tsconfig's outDir maps dist/src back to src.)
 */
const resolve = { alias: [{ find: /^earshot$/, replacement: fileURLToPath(new URL('./src/index.ts', import.meta.url)) }] };

export default defineConfig({
  test: {
    reporters: ['default'],
    projects: [
      { resolve, test: { ...shared, name: 'unit', include: UNIT, maxWorkers: 2, sequence: { groupOrder: 0 } } },
      { resolve, test: { ...shared, name: 'media', include: ['test/**/*.test.ts'], exclude: UNIT, fileParallelism: false, sequence: { groupOrder: 1 } } },
    ],
  },
});
