/** The embedded default model is a trained one: it serves meaning, not random vectors. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosine, DEFAULT_MODEL, postJson, startServer, type TestServer } from './helpers.js';

describe('models/default', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({ modelDir: DEFAULT_MODEL });
  });
  afterAll(async () => s?.close());

  it('is not marked untrained', async () => {
    const info = (await (await fetch(`${s.url}/info`)).json()) as { untrained: boolean };
    expect(info.untrained).toBe(false);
  });

  it('puts related sentences closer than unrelated ones (the README example)', async () => {
    const res = await postJson(`${s.url}/embed`, {
      inputs: ['A man is playing a guitar.', 'Someone plays an instrument.', 'The stock market fell today.'],
    });
    const [guitar, instrument, stocks] = res.json as number[][];
    expect(cosine(guitar!, instrument!)).toBeGreaterThan(cosine(guitar!, stocks!) + 0.15);
    const pairs: Array<[string, string, string]> = [
      ['A woman is slicing an onion.', 'Someone is cutting vegetables.', 'The train arrived late.'],
      ['The cat sleeps on the sofa.', 'A kitten is napping on the couch.', 'Interest rates rose sharply.'],
    ];
    for (const [a, related, unrelated] of pairs) {
      const [va, vr, vu] = (await postJson(`${s.url}/embed`, { inputs: [a, related, unrelated] })).json as number[][];
      expect(cosine(va!, vr!), `${a} ~ ${related}`).toBeGreaterThan(cosine(va!, vu!));
    }
  });
});
