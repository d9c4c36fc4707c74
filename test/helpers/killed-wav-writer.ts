/**
 * A process that writes a WAV file with the real streaming writer and is then
 * killed before it can rewrite the header: run with the file's path, the
 * sample format, the channels and the chunk size. It appends one second of a
 * 440 Hz tone, waits until every full chunk is on disk (the header, rewritten
 * only every hour here, still says 0 bytes), prints `WRITTEN <bytes>` and
 * waits to be killed.
 */
import { stat } from 'node:fs/promises';
import { WavFileWriter, type WavSampleFormat } from '../../src/sinks/wav-file-writer.js';

const [path, format, channelsArg, chunkArg] = process.argv.slice(2);
const channels = Number(channelsArg);
const chunkBytes = Number(chunkArg);
const writer = await WavFileWriter.create(path, { sampleRate: 48000, channels, sampleFormat: format as WavSampleFormat, chunkBytes, headerIntervalMs: 3_600_000 });
const samples = Float32Array.from({ length: 48000 * channels }, (_, i) => 0.5 * Math.sin((2 * Math.PI * 440 * Math.floor(i / channels)) / 48000));
for (let i = 0; i < samples.length; i += 960 * channels) writer.append(samples.subarray(i, i + 960 * channels));
const bytes = samples.length * (format === 'f32' ? 4 : 2);
const written = bytes - (bytes % chunkBytes);
while ((await stat(path)).size < writer.headerBytes + written) await new Promise((r) => setTimeout(r, 5));
process.stdout.write(`WRITTEN ${written}\n`);
setInterval(() => undefined, 1000);
