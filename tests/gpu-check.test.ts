/**
 * The GPU device check (benchmarks/gpu/check.mjs) run here, on the CPU, against the tiny BERT
 * fixture: the same script the device runs from its bundle, pointed at this checkout's
 * node_modules and at the engine's TypeScript source (through tsx), with short time budgets.
 * Packing (apt, the Node binary) and model generation (torch) are not run here: see
 * benchmarks/gpu/README.md for the dry run that covers them.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const CHECK = join(ROOT, 'benchmarks/gpu/check.mjs');
const TINY_BERT = join(ROOT, 'tests/fixtures/models/tiny-bert');
const ENGINE_SRC = join(ROOT, 'src/runtime/engine.ts');
const tmp = mkdtempSync(join(tmpdir(), 'gpu-check-'));

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function runCheck(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', CHECK, ...args],
      { cwd: ROOT, timeout: 150_000, maxBuffer: 32 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        res({ code, stdout, stderr });
      },
    );
  });
}

interface ByBatch {
  [batch: string]: { seqPerSec: number };
}

describe('benchmarks/gpu/check.mjs', () => {
  it('probes providers, measures raw ORT and the engine at batch 1/16/64, and writes the report', async () => {
    const out = join(tmp, 'report.json');
    const r = await runCheck([
      '--model',
      TINY_BERT,
      '--engine',
      ENGINE_SRC,
      '--seconds',
      '0.3',
      '--warmup',
      '1',
      '--budget',
      '120',
      '--quiet',
      '--out',
      out,
    ]);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    const report = JSON.parse(readFileSync(out, 'utf8'));

    // Providers: the CPU works; each accelerated one either works or says exactly why not.
    expect(report.providers.cpu.ok).toBe(true);
    for (const name of ['webgpu', 'cuda']) {
      const p = report.providers[name];
      expect(p, name).toBeDefined();
      if (!p.ok) expect(typeof p.error === 'string' && p.error.length > 0, `${name} error`).toBe(true);
    }
    expect(['webgpu', 'cuda', 'cpu']).toContain(report.best);
    if (report.best !== 'cpu') expect(report.providers[report.best].ok).toBe(true);

    // Throughput at each batch size, raw and through the engine.
    const sections: Array<[string, ByBatch | undefined]> = [
      ['raw.best', report.raw.best?.byBatch],
      ['raw.cpu', report.raw.cpu?.byBatch],
      ['engine.best', report.engine.best?.byBatch],
      ['engine.cpu', report.engine.cpu?.byBatch],
    ];
    for (const [name, byBatch] of sections) {
      for (const batch of [1, 16, 64]) {
        expect(byBatch?.[batch]?.seqPerSec, `${name} batch ${batch}`).toBeGreaterThan(0);
      }
    }
    for (const batch of [1, 16, 64]) {
      expect(report.ratios.engine[batch]).toBeGreaterThan(0);
      expect(report.engine.cpu.byBatch[batch].tokensPerText).toBeGreaterThan(8);
    }

    // The engine records the provider it runs on and the budget its warm-up probe chose.
    expect(typeof report.engine.best.provider).toBe('string');
    expect(report.engine.best.provider).toBe(report.best);
    expect(report.engine.cpu.provider).toBe('cpu');
    expect(report.engine.best.workers).toBe(1);
    expect(report.engine.best.batchTokenBudget).toBeGreaterThan(0);
    expect(report.engine.best.logs.some((l: string) => l.includes('batch token budget'))).toBe(true);

    // Best provider against CPU. Here both run on the CPU, and the report must say that this is no
    // cross-provider check rather than present the figure as one.
    expect(report.cosine.n).toBe(8);
    expect(report.cosine.providers).toEqual([report.engine.best.provider, 'cpu']);
    expect(report.cosine.sameProvider).toBe(report.engine.best.provider === 'cpu');
    if (report.cosine.sameProvider) expect(report.notes.some((n: string) => /not a cross-provider agreement check/.test(n))).toBe(true);
    expect(report.cosine.min).toBeGreaterThanOrEqual(0.999);

    // Host facts and the markdown summary.
    expect(report.host.ortVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(report.host.node).toBe(process.version);
    const md = readFileSync(join(tmp, 'report.md'), 'utf8');
    expect(md).toContain('| raw ORT cpu |');
    expect(md).toContain('best provider');
    expect(r.stdout).toContain('| provider | status | detail |');
  }, 180_000);

  it('records a failing phase in the report and exits non-zero instead of crashing', async () => {
    const out = join(tmp, 'broken.json');
    const r = await runCheck([
      '--model',
      TINY_BERT,
      '--engine',
      join(tmp, 'no-such-engine.js'),
      '--providers',
      'cuda',
      '--batches',
      '1',
      '--seconds',
      '0.1',
      '--warmup',
      '1',
      '--quiet',
      '--out',
      out,
    ]);
    expect(r.code).toBe(1);
    const report = JSON.parse(readFileSync(out, 'utf8'));
    expect(report.providers.cpu.ok).toBe(true);
    expect(report.raw.cpu.byBatch[1].seqPerSec).toBeGreaterThan(0);
    expect(report.engine.cpu.ok).toBe(false);
    expect(report.engine.cpu.error).toContain('no-such-engine');
    expect(report.notes.some((n: string) => n.startsWith('engine.cpu failed'))).toBe(true);
  }, 120_000);
});
