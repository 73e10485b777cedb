import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generateOpenApi, OPENAPI_PATH } from '../src/server/openapi.js';

describe('OpenAPI document', () => {
  it('the committed openapi/openapi.json is what the server generates (npm run openapi:write)', async () => {
    const generated = JSON.parse(JSON.stringify(await generateOpenApi()));
    const committed = JSON.parse(readFileSync(OPENAPI_PATH, 'utf8'));
    expect(committed, 'openapi/openapi.json is stale: run `npm run openapi:write`').toEqual(generated);
  });

  it('documents every public route with request and error schemas', async () => {
    const doc = (await generateOpenApi()) as { paths: Record<string, Record<string, any>> };
    for (const path of [
      '/embed',
      '/v1/embeddings',
      '/v1/models',
      '/health',
      '/ready',
      '/info',
      '/metrics',
      '/search',
      '/collections',
      '/collections/{name}',
      '/collections/{name}/documents',
      '/collections/{name}/documents/{id}',
    ]) {
      expect(doc.paths).toHaveProperty([path]);
    }
    const embed = doc.paths['/embed']!.post;
    expect(embed.requestBody.content['application/json'].schema.required).toEqual(['inputs']);
    for (const code of ['200', '413', '422', '429', '503', '504']) expect(embed.responses).toHaveProperty(code);
    expect(doc.paths['/v1/embeddings']!.post.responses['422'].content['application/json'].schema.properties).toHaveProperty('error');
  });
});
