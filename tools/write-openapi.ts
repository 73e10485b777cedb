/** Writes the OpenAPI document the server generates to openapi/openapi.json (npm run openapi:write). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateOpenApi, OPENAPI_PATH } from '../src/server/openapi.js';

const doc = await generateOpenApi();
mkdirSync(join(OPENAPI_PATH, '..'), { recursive: true });
writeFileSync(OPENAPI_PATH, `${JSON.stringify(doc, null, 2)}\n`);
console.log(`wrote ${OPENAPI_PATH}`);
process.exit(0);
