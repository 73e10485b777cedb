import { constants as fsc, promises as fsp } from 'node:fs';
import * as path from 'node:path';

/**
 * The few filesystem primitives durability rests on. A rename or a new file
 * is only durable once the directory holding the entry is fsynced too.
 */

/** Opens `p`, runs `use` on the handle, and closes it whatever happens. */
async function withFile<T>(p: string, flags: string | number, use: (fh: fsp.FileHandle) => Promise<T>): Promise<T> {
  const fh = await fsp.open(p, flags);
  try {
    return await use(fh);
  } finally {
    await fh.close();
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  await withFile(dir, fsc.O_RDONLY, (fh) => fh.sync());
}

export async function fsyncFile(file: string): Promise<void> {
  await withFile(file, 'r+', (fh) => fh.sync());
}

/** Writes `data` to `file` and fsyncs it; `flags` 'wx' fails with EEXIST when the file exists. */
export async function writeFileSynced(file: string, data: string | Uint8Array, flags: 'w' | 'wx' = 'w'): Promise<void> {
  await withFile(file, flags, async (fh) => {
    await fh.writeFile(data);
    await fh.sync();
  });
}

/** Write to `<file>.tmp`, fsync it, rename over `file`, fsync the directory. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.tmp`;
  await writeFileSynced(tmp, data);
  await fsp.rename(tmp, file);
  await fsyncDir(path.dirname(file));
}

/** Writes all of `data` at `position`, looping over short writes. */
export async function writeFully(fh: fsp.FileHandle, data: Uint8Array, position: number): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const { bytesWritten } = await fh.write(data, off, data.length - off, position + off);
    if (bytesWritten <= 0) throw new Error('write made no progress');
    off += bytesWritten;
  }
}

export async function pathExists(p: string): Promise<boolean> {
  try {
    await fsp.access(p);
    return true;
  } catch {
    return false;
  }
}

export async function removeTree(p: string): Promise<void> {
  await fsp.rm(p, { recursive: true, force: true });
}

/** Removes `paths` (files or trees) inside `dir`, then fsyncs `dir` once so the removals are durable. */
export async function removeDurably(dir: string, paths: string[]): Promise<void> {
  if (paths.length === 0) return;
  for (const p of paths) await removeTree(p);
  await fsyncDir(dir);
}
