/**
 * No Docker engine runs here, so this test executes the Dockerfile's own instructions in temporary
 * directories: each stage's WORKDIR is a fresh folder, COPY copies from the repository (or an earlier
 * stage), RUN runs in a shell there, and finally CMD starts the image's server with the image's ENV
 * and HEALTHCHECK must pass. Absolute paths (/app, /data) are mapped into the stage's folder;
 * ownership changes are skipped (no `node` user on this machine).
 */
import { execSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

interface Stage {
  name: string;
  root: string;
  workdir: string;
  env: Record<string, string>;
  cmd?: string[];
  healthcheck?: string;
}

/** Joins continuation lines and drops comments. */
function instructions(dockerfile: string): Array<[string, string]> {
  return dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const at = l.indexOf(' ');
      return [l.slice(0, at).toUpperCase(), l.slice(at + 1).trim()];
    });
}

describe('Dockerfile', () => {
  it('its install, build and start commands work, and the health check passes', async () => {
    const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    const stages: Stage[] = [];
    let stage: Stage | undefined;
    const mapPath = (s: Stage, p: string): string => (p.startsWith('/') ? join(s.root, p) : join(s.workdir, p));
    const mapCommand = (s: Stage, cmd: string): string =>
      cmd
        .replace(/(^|[\s=])\/(app|data)\b/g, (_m, pre: string, dir: string) => `${pre}${join(s.root, dir)}`)
        .replace(/&& chown \S+ \S+/g, '');

    for (const [op, arg] of instructions(text)) {
      if (op === 'FROM') {
        const name = /\bAS\s+(\S+)/i.exec(arg)?.[1] ?? `stage${stages.length}`;
        stage = { name, root: mkdtempSync(join(tmpdir(), `docker-${name}-`)), workdir: '', env: {} };
        stage.workdir = stage.root;
        stages.push(stage);
        continue;
      }
      const s = stage!;
      switch (op) {
        case 'WORKDIR':
          s.workdir = mapPath(s, arg);
          mkdirSync(s.workdir, { recursive: true });
          break;
        case 'ENV':
          for (const m of arg.matchAll(/(\w+)=(\S+)/g)) s.env[m[1]!] = m[2]!;
          break;
        case 'COPY': {
          const parts = arg.split(/\s+/);
          const from = parts[0]!.startsWith('--from=') ? stages.find((x) => x.name === parts.shift()!.slice(7)) : undefined;
          const dest = mapPath(s, parts.pop()!);
          for (const src of parts) {
            const source = from ? mapPath(from, src) : join(ROOT, src);
            expect(existsSync(source), `COPY source ${src} exists`).toBe(true);
            const target = dest.endsWith('/') || parts.length > 1 ? join(dest, src.split('/').pop()!) : dest;
            mkdirSync(dirname(target), { recursive: true });
            cpSync(source, target, { recursive: true, dereference: true });
          }
          break;
        }
        case 'RUN':
          // OS packages are the image's business: the replay does not run apt-get on the host, it
          // checks that what the line installs (the node-gyp toolchain) is there.
          if (/^apt-get\b/.test(arg)) {
            for (const tool of ['python3', 'make', 'g++'])
              expect(() => execSync(`command -v ${tool}`, { stdio: 'pipe' }), `${tool} on the host`).not.toThrow();
            break;
          }
          execSync(mapCommand(s, arg), { cwd: s.workdir, stdio: 'pipe', env: { ...process.env, ...s.env } });
          break;
        case 'CMD':
          s.cmd = JSON.parse(arg) as string[];
          break;
        case 'HEALTHCHECK':
          s.healthcheck = arg.slice(arg.indexOf('CMD ') + 4);
          break;
        default:
          // USER, EXPOSE, VOLUME: nothing to execute.
          break;
      }
    }

    const final = stages.at(-1)!;
    expect(final.cmd, 'the image has a CMD').toBeDefined();
    expect(final.healthcheck, 'the image has a HEALTHCHECK').toBeDefined();
    expect(text).toMatch(/^USER\s+(?!root)\S+/m);
    const port = String(21000 + Math.floor(Math.random() * 20000));
    const env = { ...process.env, ...final.env, PORT: port, HOST: '127.0.0.1', DATA_DIR: join(final.root, 'data'), LOG_LEVEL: 'warn' };
    const [bin, ...args] = final.cmd!;
    const child = spawn(bin === 'node' ? process.execPath : bin!, args, { cwd: final.workdir, env, stdio: 'ignore' });
    try {
      let healthy = false;
      for (let i = 0; i < 120 && !healthy; i++) {
        await new Promise((r) => setTimeout(r, 500));
        try {
          execSync(final.healthcheck!, { env, stdio: 'ignore' });
          healthy = true;
        } catch {
          expect(child.exitCode, 'the server process is still running').toBeNull();
        }
      }
      expect(healthy).toBe(true);
      const res = await fetch(`http://127.0.0.1:${port}/embed`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"inputs":"hello"}',
      });
      expect(res.status).toBe(200);
      // Dev dependencies were pruned and foreign binaries removed.
      expect(existsSync(join(final.workdir, 'node_modules/vitest'))).toBe(false);
      expect(existsSync(join(final.workdir, 'node_modules/onnxruntime-node/bin/napi-v6/win32'))).toBe(false);
    } finally {
      child.kill('SIGTERM');
    }
  }, 600_000);
});
