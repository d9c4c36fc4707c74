/**
 * Makes a WAV file that its writer could not finalize (its process was
 * killed) cover every whole sample frame it holds.
 *
 * The streaming writer (wav-file-writer.ts) rewrites the header after the data
 * it covers, once a second, so a file left by a killed process is always a
 * valid WAV; but data written since the last rewrite is on disk and not
 * counted (a data write that had completed when its header write had not
 * started, a chunk and a hole queued when audio followed a long pause), and
 * players stop at what the header says. Here the header is made to say what
 * the file holds, cut to whole sample frames, with the file truncated to match
 * (a partly written last frame is not audio).
 *
 * Only for a file nothing writes any more: a writer that is still running
 * rewrites the header after this.
 */
import { open } from 'node:fs/promises';
import { readWavHeaderInfo, wavSizesPatch } from './wav-header.js';

export interface WavRepair {
  /** Data bytes the header covers now (whole sample frames). */
  dataBytes: number;
  /** What the header covered before. */
  previousDataBytes: number;
  /** Bytes of the file now. */
  bytes: number;
  /** Seconds of audio the header covers now. */
  seconds: number;
}

/** How far into the file the `fmt ` and `data` chunk headers may be (ours: 80 or 94 bytes). */
const HEADER_SEARCH = 4096;

/**
 * Rewrites the sizes of the WAV file at `path` (RIFF and `data`, an
 * IEEE-float file's `fact` sample count; an RF64 file's ds64) to cover all of
 * its whole sample frames. A file that has grown past 4 GiB since its header
 * was last written becomes RF64, as its writer would have made it, when it
 * has the JUNK chunk earshot's recordings begin with. Resolves to what it
 * covers, or undefined for a file that is not a WAV it can read, or cannot
 * say its size (past 4 GiB without that JUNK chunk): left as it is.
 */
export async function repairWavHeader(path: string): Promise<WavRepair | undefined> {
  const fh = await open(path, 'r+');
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(Math.min(size, HEADER_SEARCH));
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    const info = readWavHeaderInfo(head.subarray(0, bytesRead));
    if (!info) return undefined;
    const dataStart = info.dataSizeAt + 4;
    const held = Math.max(0, size - dataStart);
    const dataBytes = held - (held % info.blockAlign);
    const fixed = { dataBytes, previousDataBytes: info.dataBytes, bytes: dataStart + dataBytes, seconds: dataBytes / info.byteRate };
    if (info.dataBytes === dataBytes && size === dataStart + dataBytes) return fixed;
    const patch = wavSizesPatch(head, info, dataBytes);
    if (!patch) return undefined;
    await fh.write(patch, 0, patch.length, 0);
    if (size !== dataStart + dataBytes) await fh.truncate(dataStart + dataBytes);
    return fixed;
  } finally {
    await fh.close();
  }
}
