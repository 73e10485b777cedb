/** /docs renders in a real browser: headless Chromium loads Swagger UI and lists the routes. */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer, TINY_BERT } from './helpers.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const run = promisify(execFile);
// Flags for a closed network: no background fetches, no sandbox as root, a throwaway profile.
const flags = (profile: string): string[] => [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  `--user-data-dir=${profile}`,
  '--virtual-time-budget=15000',
  '--window-size=1280,1800',
];

describe.skipIf(!CHROMIUM)('/docs in headless Chromium', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({ modelDir: TINY_BERT });
  });
  afterAll(async () => s?.close());

  it('renders the route list and takes a screenshot', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'docs-'));
    const { stdout: dom } = await run(CHROMIUM!, [...flags(join(dir, 'p1')), '--dump-dom', `${s.url}/docs`], {
      maxBuffer: 64 * 1024 * 1024,
      timeout: 60_000,
    });
    // Swagger UI builds these elements in the browser from /docs/json: they are absent from the HTML the server sends.
    expect(dom).toContain('opblock-summary-path');
    for (const route of ['/embed', '/v1/embeddings', '/health', '/info']) expect(dom).toContain(`data-path="${route}"`);
    const shot = join(dir, 'docs.png');
    await run(CHROMIUM!, [...flags(join(dir, 'p2')), `--screenshot=${shot}`, `${s.url}/docs`], { timeout: 60_000 });
    expect(statSync(shot).size).toBeGreaterThan(20_000);
  });
});
if (!CHROMIUM)
  describe('/docs in headless Chromium', () =>
    it.skip('chromium is not installed (apt-get install chromium): skipping the browser test', () => {}));
