/**
 * The OpenAPI document as the server generates it, for the committed copy in openapi/. The app is
 * built around an embedder that serves nothing: the document depends on the routes only, so no
 * model is loaded and no worker is started.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CollectionStore } from '../index/index.js';
import type { Embedder } from '../runtime/embedder.js';
import { buildApp } from './app.js';

export const OPENAPI_PATH = fileURLToPath(new URL('../../openapi/openapi.json', import.meta.url));

/** An embedder for building the app only: every use of it is a bug. */
const noModel: Embedder = new Proxy({} as Embedder, {
  get(_target, member) {
    throw new Error(`the OpenAPI document was generated from a model (Embedder.${String(member)} read while building the app)`);
  },
});

export async function generateOpenApi(): Promise<unknown> {
  const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  const dataDir = mkdtempSync(join(tmpdir(), 'openapi-'));
  const store = await CollectionStore.open(dataDir);
  try {
    const app = await buildApp({ embedder: noModel, store, version });
    await app.ready();
    const doc = app.swagger();
    await app.close();
    return doc;
  } finally {
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
