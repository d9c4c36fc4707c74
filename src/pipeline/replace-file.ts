/**
 * Replacing a file of the pipelines directory (a pipeline, the room bindings)
 * so that a crash or a power cut leaves the old file or the new one, whole:
 * the text goes to a temporary file of this write's own (two writers of one
 * name would interleave their bytes), is flushed to the disk, and is renamed
 * over the file; then the directory is flushed, so the rename lasts too.
 * Without the flushes a power cut can leave the new name on empty or partial
 * data, and the server would then refuse to start with that file.
 */
import { randomUUID } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Replaces `path` with `text`. The temporary file is hidden and ends in
 * `.tmp`, which the pipelines directory's watcher ignores. Rejects with the
 * system's error (its `code`), the file left as it was.
 */
export async function replaceFile(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomUUID()}.tmp`);
  try {
    const fh = await open(temp, 'wx');
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, path);
  } catch (e) {
    await unlink(temp).catch(() => {});
    throw e;
  }
  // The rename is in the directory's data: flushed too (best effort: some filesystems refuse a directory's fsync).
  const d = await open(dir, 'r').catch(() => undefined);
  await d?.sync().catch(() => undefined);
  await d?.close().catch(() => undefined);
}
