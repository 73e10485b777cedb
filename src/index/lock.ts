import { promises as fsp, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { StorageError } from './errors.js';
import { writeFileSynced } from './fsutil.js';

/**
 * One process per data directory. Two processes appending to the same logs
 * and deleting each other's covered segments destroy the directory, so the
 * store takes `<dataDir>/LOCK` (created with O_EXCL) before reading anything
 * and removes it on close.
 *
 * A lock left behind by a killed process must not block the restart: the file
 * names its holder (PID, host, and on Linux the process start time), and a
 * holder on this host that no longer runs, or whose PID now belongs to a
 * different process (PID reuse, or PID 1 again in a restarted container), is
 * stale and taken over.
 */

export const LOCK_FILE = 'LOCK';

/** Lock files this process holds: a lock naming our own PID is ours only if listed here. */
const heldHere = new Set<string>();

interface Holder {
  pid: number;
  host: string;
  /** Process start time in clock ticks since boot (/proc/<pid>/stat field 22), when known. */
  start?: string;
  since: string;
}

/** The start time of a process, which tells a PID's current owner from an earlier one (Linux only). */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may contain spaces and parentheses: count fields after its last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the recorded holder certainly no longer holds the lock. */
function isStale(file: string, holder: Holder | undefined): boolean {
  if (!holder || !Number.isInteger(holder.pid)) return false; // unreadable: do not guess
  if (holder.host !== hostname()) return false; // another machine's process: cannot check
  // Our PID but not taken by us: an earlier process with the same PID (a restarted container).
  if (holder.pid === process.pid) return !heldHere.has(file);
  if (!running(holder.pid)) return true;
  const start = processStart(holder.pid);
  return holder.start !== undefined && start !== undefined && start !== holder.start;
}

async function readHolder(file: string): Promise<Holder | undefined> {
  try {
    return JSON.parse(await fsp.readFile(file, 'utf8')) as Holder;
  } catch {
    return undefined;
  }
}

export class DataDirLock {
  private constructor(
    readonly file: string,
    private readonly content: string,
  ) {}

  /** Takes the lock or throws a StorageError naming the process that holds it. */
  static async acquire(dataDir: string): Promise<DataDirLock> {
    const file = path.join(dataDir, LOCK_FILE);
    const me: Holder = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
    const start = processStart(process.pid);
    if (start !== undefined) me.start = start;
    const content = `${JSON.stringify(me)}\n`;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await writeFileSynced(file, content, 'wx');
        heldHere.add(file);
        return new DataDirLock(file, content);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = await readHolder(file);
      if (holder === undefined) {
        // Being written by its creator right now, or damaged: look again shortly before judging.
        await new Promise((r) => setTimeout(r, 50));
        const again = await readHolder(file);
        if (again === undefined && attempt === 4) {
          throw new StorageError(
            `data directory ${dataDir} is locked (${file} exists but is unreadable); remove it if no server uses this directory`,
          );
        }
        continue;
      }
      if (!isStale(file, holder)) {
        throw new StorageError(
          `data directory ${dataDir} is in use by process ${holder.pid} on ${holder.host} (since ${holder.since}); ` +
            `one process per data directory (lock file ${file})`,
        );
      }
      await fsp.rm(file, { force: true });
    }
    throw new StorageError(`could not lock data directory ${dataDir}: other processes keep taking ${file}`);
  }

  /** Removes the lock file if it is still ours. */
  async release(): Promise<void> {
    heldHere.delete(this.file);
    try {
      if ((await fsp.readFile(this.file, 'utf8')) === this.content) await fsp.rm(this.file, { force: true });
    } catch {
      // already gone
    }
  }
}
