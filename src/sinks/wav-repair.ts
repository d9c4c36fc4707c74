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

/** How far into the file the `fmt ` and `data` chunk headers may be (ours: 44 or 58 bytes). */
const HEADER_SEARCH = 4096;

/**
 * Rewrites the RIFF and `data` sizes (and an IEEE-float file's `fact` sample
 * count) of the WAV file at `path` to cover all of its whole sample frames.
 * Resolves to what it covers, or undefined for a file that is not a WAV it
 * can read (left as it is).
 */
export async function repairWavHeader(path: string): Promise<WavRepair | undefined> {
  const fh = await open(path, 'r+');
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(Math.min(size, HEADER_SEARCH));
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    if (bytesRead < 12 || head.toString('ascii', 0, 4) !== 'RIFF' || head.toString('ascii', 8, 12) !== 'WAVE') return undefined;
    let blockAlign = 0;
    let byteRate = 0;
    let factAt: number | undefined;
    for (let o = 12; o + 8 <= bytesRead; ) {
      const id = head.toString('ascii', o, o + 4);
      const chunkSize = head.readUInt32LE(o + 4);
      if (id === 'fmt ' && o + 24 <= bytesRead) {
        byteRate = head.readUInt32LE(o + 16);
        blockAlign = head.readUInt16LE(o + 20);
      } else if (id === 'fact' && o + 12 <= bytesRead) {
        factAt = o + 8;
      } else if (id === 'data') {
        if (!(blockAlign > 0) || !(byteRate > 0)) return undefined;
        const dataStart = o + 8;
        const held = Math.max(0, size - dataStart);
        const dataBytes = held - (held % blockAlign);
        const fixed = { dataBytes, previousDataBytes: chunkSize, bytes: dataStart + dataBytes, seconds: dataBytes / byteRate };
        if (chunkSize === dataBytes && size === dataStart + dataBytes) return fixed;
        // Past what a RIFF size can say (4 GiB): left as the writer left it.
        if (dataStart - 8 + dataBytes > 0xffffffff) return undefined;
        const u32 = (value: number) => {
          const b = Buffer.alloc(4);
          b.writeUInt32LE(value);
          return b;
        };
        await fh.write(u32(dataStart - 8 + dataBytes), 0, 4, 4);
        if (factAt !== undefined) await fh.write(u32(dataBytes / blockAlign), 0, 4, factAt);
        await fh.write(u32(dataBytes), 0, 4, o + 4);
        if (size !== dataStart + dataBytes) await fh.truncate(dataStart + dataBytes);
        return fixed;
      }
      o += 8 + chunkSize + (chunkSize & 1);
    }
    return undefined;
  } finally {
    await fh.close();
  }
}
