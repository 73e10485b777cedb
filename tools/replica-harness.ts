/**
 * Replicas of the service over one PostgreSQL, behind Debian's haproxy, all on
 * loopback ports picked at run time: the setup the replica tests and the
 * replica benchmark run against.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from './postgres.js';

const ROOT = resolve(import.meta.dirname, '..');

export function haproxyUnavailableReason(): string | undefined {
  return spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0
    ? undefined
    : 'haproxy is not installed (Debian: apt-get install haproxy, or npm run pg:setup); the replica tests skip';
}

export interface ReplicaProcess {
  readonly port: number;
  readonly url: string;
  child: ChildProcess;
  /** Waits until /ready answers 200. */
  ready(timeoutMs?: number): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port (after a kill). */
  restart(): Promise<void>;
}

export interface ReplicaOptions {
  storeUrl: string;
  modelDir: string;
  env?: Record<string, string>;
  /** Scheduling niceness of the replica process (default 10). */
  nice?: number;
  /** Where the server's stderr goes (default: ignored; 'inherit' to see it). */
  stderr?: 'ignore' | 'inherit';
}

export async function startReplica(opts: ReplicaOptions): Promise<ReplicaProcess> {
  const port = await freePort();
  const spawnIt = (): ChildProcess =>
    // At nice 10: the replicas (and their inference workers) must not starve the test runner or
    // whatever else shares the machine's cores; only relative timing matters here.
    spawn('nice', ['-n', String(opts.nice ?? 10), process.execPath, '--import', 'tsx', join(ROOT, 'src/server/main.ts')], {
      env: {
        ...process.env,
        MODEL_DIR: opts.modelDir,
        STORE_URL: opts.storeUrl,
        PORT: String(port),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
        WORKERS: '1',
        ...opts.env,
      },
      stdio: ['ignore', 'ignore', opts.stderr ?? 'ignore'],
    });
  const r: ReplicaProcess = {
    port,
    url: `http://127.0.0.1:${port}`,
    child: spawnIt(),
    async ready(timeoutMs = 60_000) {
      const until = Date.now() + timeoutMs;
      while (Date.now() < until) {
        if (r.child.exitCode !== null) throw new Error(`replica on ${port} exited with ${r.child.exitCode}`);
        if (
          await fetch(`${r.url}/ready`).then(
            (res) => res.status === 200,
            () => false,
          )
        )
          return;
        await new Promise((res) => setTimeout(res, 100));
      }
      throw new Error(`replica on ${port} did not become ready within ${timeoutMs} ms`);
    },
    async kill(signal = 'SIGTERM') {
      if (r.child.exitCode !== null || r.child.signalCode !== null) return;
      const exited = new Promise((res) => r.child.once('exit', res));
      r.child.kill(signal);
      await exited;
    },
    async restart() {
      await r.kill('SIGKILL');
      r.child = spawnIt();
    },
  };
  return r;
}

export interface Balancer {
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
}

/**
 * haproxy in front of `backends` (ports): round robin, health-checked on
 * /ready every 200 ms, a connection refused retried on the other replica.
 */
export async function startHaproxy(backends: number[]): Promise<Balancer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'haproxy-'));
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    [
      'global',
      '  maxconn 512',
      'defaults',
      '  mode http',
      '  timeout connect 1s',
      '  timeout client 60s',
      '  timeout server 60s',
      '  retries 3',
      '  option redispatch',
      '  option http-keep-alive',
      'frontend embeddings',
      `  bind 127.0.0.1:${port}`,
      '  default_backend replicas',
      'backend replicas',
      '  balance roundrobin',
      '  option httpchk GET /ready',
      '  http-check expect status 200',
      '  default-server inter 200ms fastinter 100ms downinter 200ms fall 2 rise 1',
      ...backends.map((p, i) => `  server r${i + 1} 127.0.0.1:${p} check`),
      '',
    ].join('\n'),
  );
  const child = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`haproxy exited with ${child.exitCode}: ${log}`);
    if (
      await fetch(`${url}/health`).then(
        (r) => r.status === 200,
        () => false,
      )
    )
      break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    url,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
