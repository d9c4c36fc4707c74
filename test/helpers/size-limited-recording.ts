/**
 * A process that records through a real RecordSink until a file-size limit
 * (`prlimit --fsize`, set on it by the test, as a FAT32 volume's 4 GiB is)
 * stops the file: run with the recordings directory. Once loaded it prints
 * READY and waits for a line on stdin (the limit is set then, not while its
 * modules load and cache); it then writes 10 s of a 440 Hz tone, s16 mono at
 * 48 kHz, and prints the failure and the recording's info as one JSON line.
 * Node ignores SIGXFSZ, so a write past the limit fails with EFBIG.
 */
import type { AudioFrame } from '../../src/media/frames.js';
import { RecordSink } from '../../src/sinks/record-sink.js';
import { RecordingsStore } from '../../src/sinks/recordings-store.js';

const [dir] = process.argv.slice(2);
const failures: Array<{ code: string; message: string }> = [];
const sink = new RecordSink({
  store: new RecordingsStore(dir),
  peer: 'alice',
  baseName: 'limited',
  sampleRate: 48000,
  channels: 1,
  sampleFormat: 's16',
  onFailed: (error) => failures.push({ code: error.code, message: error.message }),
});
process.stdout.write('READY\n');
await new Promise((resolve) => process.stdin.once('data', resolve));
process.stdin.pause();
sink.arm(true);
for (let position = 0; position < 10 * 48000; position += 960) {
  const data = Float32Array.from({ length: 960 }, (_, i) => 0.5 * Math.sin((2 * Math.PI * 440 * (position + i)) / 48000));
  const frame: AudioFrame = { position, sampleRate: 48000, channels: 1, sampleFormat: 'f32', data, rms: 0, peak: 0.5, arrival: 0 };
  sink.write(frame);
  await new Promise((r) => setImmediate(r));
}
const info = await sink.finalize(10 * 48000);
process.stdout.write(`${JSON.stringify({ failures, info })}\n`);
