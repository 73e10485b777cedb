/** The OpenAPI document as the server generates it, for the committed copy in openapi/. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CollectionStore } from '../index/index.js';
import { Engine } from '../runtime/engine.js';
import { buildApp } from './app.js';

export const OPENAPI_PATH = fileURLToPath(new URL('../../openapi/openapi.json', import.meta.url));
const DEFAULT_MODEL = fileURLToPath(new URL('../../models/default', import.meta.url));

/** Builds the app around the default model and returns its document (independent of the model). */
export async function generateOpenApi(): Promise<unknown> {
  const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  const engine = await Engine.load({ modelDir: DEFAULT_MODEL, workers: 1, intraOpThreads: 1 });
  const dataDir = mkdtempSync(join(tmpdir(), 'openapi-'));
  const store = await CollectionStore.open(dataDir);
  try {
    const app = await buildApp({ embedder: engine, store, version });
    await app.ready();
    const doc = app.swagger();
    await app.close();
    return doc;
  } finally {
    await store.close();
    await engine.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
