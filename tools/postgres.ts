/**
 * A throwaway PostgreSQL cluster from Debian's packaged binaries, for tests
 * and benchmarks: its own data directory (mkdtemp), its own port (picked at
 * run time), a Unix socket inside that directory and trust auth on loopback,
 * so it runs beside any other cluster or agent on the machine. Started and
 * stopped with `pg_ctl` (the binary `pg_ctlcluster` drives). As root, every
 * PostgreSQL binary runs as the `postgres` user (the server refuses root).
 *
 * For a long-lived cluster for people, see tools/pg-setup.sh (`npm run pg:setup`).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The newest packaged server's bin directory, or undefined when PostgreSQL is not installed. */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

/** Why PostgreSQL tests cannot run here, or undefined when they can. */
export function postgresUnavailableReason(): string | undefined {
  if (!postgresBinDir())
    return 'PostgreSQL is not installed (Debian: apt-get install postgresql, or npm run pg:setup); PostgreSQL tests skip';
  if (process.getuid?.() === 0) {
    const r = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    if (r.status !== 0) return 'running as root without a postgres user to run the server as; PostgreSQL tests skip';
  }
  return undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface TempCluster {
  readonly dir: string;
  readonly port: number;
  /** A libpq URL for `database` on this cluster (user postgres, trust auth). */
  url(database?: string): string;
  /** Creates a database and returns its URL. */
  createDatabase(name: string): string;
  /** Runs SQL with psql against `database`; returns stdout. */
  psql(sql: string, database?: string): string;
  start(): void;
  /** `fast`: clean shutdown; `immediate`: like a crash (recovery on next start). */
  stop(mode?: 'fast' | 'immediate'): void;
  restart(): void;
  /** Stops the server and removes the data directory. */
  destroy(): void;
}

/** As the postgres user when root, at nice 10 so a test's server never starves the runner. */
function asPostgres(bin: string, args: string[]): [string, string[]] {
  const argv = process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--', bin, ...args] : [bin, ...args];
  return ['nice', ['-n', '10', ...argv]];
}

function run(bin: string, args: string[], input?: string): string {
  const [cmd, argv] = asPostgres(bin, args);
  return execFileSync(cmd, argv, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** initdb + start on a free port. `settings` are extra `-c name=value` server settings. */
export async function startTempCluster(settings: Record<string, string | number> = {}): Promise<TempCluster> {
  const bin = postgresBinDir();
  if (!bin) throw new Error(postgresUnavailableReason());
  const dir = mkdtempSync(join(tmpdir(), 'pgcluster-'));
  const data = join(dir, 'data');
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  run(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
  const port = await freePort();
  const options = [
    `-p ${port}`,
    '-c listen_addresses=127.0.0.1',
    `-c unix_socket_directories=${dir}`,
    '-c max_connections=100',
    '-c shared_buffers=64MB',
    ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`),
  ].join(' ');
  const log = join(dir, 'server.log');
  const pgCtl = join(bin, 'pg_ctl');
  const cluster: TempCluster = {
    dir,
    port,
    url: (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`,
    createDatabase(name) {
      run(join(bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', name]);
      return cluster.url(name);
    },
    psql(sql, database = 'postgres') {
      return run(
        join(bin, 'psql'),
        ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', database, '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1'],
        sql,
      );
    },
    start() {
      run(pgCtl, ['-D', data, '-l', log, '-o', options, '-w', '-t', '60', 'start']);
    },
    stop(mode = 'fast') {
      run(pgCtl, ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']);
    },
    restart() {
      cluster.stop('fast');
      cluster.start();
    },
    destroy() {
      if (existsSync(join(data, 'postmaster.pid'))) {
        try {
          cluster.stop('immediate');
        } catch {
          // already down
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  cluster.start();
  return cluster;
}
