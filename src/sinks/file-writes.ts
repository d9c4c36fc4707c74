/**
 * Positioned writes for the streaming recording writers (WAV, Ogg Opus).
 * `write` may write fewer bytes than asked — a full disk does that — so a
 * buffer is written in as many calls as it takes, and each call's progress is
 * reported as it happens: a write that fails halfway has still put bytes on
 * disk, and the writer's idea of the file must include them.
 */

/** The part of `fs.promises.FileHandle` the recording writers use. */
export interface RecordingFileHandle {
  write(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

/** Writes all of `buf` at `position`, calling `progressed` with the bytes of each call that wrote some. */
export async function writeAll(fh: RecordingFileHandle, buf: Buffer, position: number, progressed?: (bytes: number) => void): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    // POSIX write returns 0 only when asked for 0 bytes; treat it as the disk refusing rather than loop forever.
    if (!(bytesWritten > 0)) throw Object.assign(new Error('ENOSPC: the write made no progress (0 bytes written)'), { code: 'ENOSPC' });
    done += bytesWritten;
    progressed?.(bytesWritten);
  }
}
