import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, helpText, loadConfig, SETTINGS } from '../src/server/config.js';
import { ROOT } from './helpers.js';

describe('configuration', () => {
  it('reads the environment, and flags win over it', () => {
    const c = loadConfig(['--port', '9001'], { PORT: '9000', HOST: '127.0.0.1', MODEL_DIR: '/m', EXECUTION_PROVIDERS: 'webgpu, cpu' });
    if (c === 'help') throw new Error('unexpected help');
    expect(c).toMatchObject({ port: 9001, host: '127.0.0.1', modelDir: '/m', executionProviders: ['webgpu', 'cpu'] });
  });

  it('defaults to the embedded model and port 8080', () => {
    const c = loadConfig([], {});
    if (c === 'help') throw new Error('unexpected help');
    expect(c.port).toBe(8080);
    expect(c.modelDir).toBe(join(ROOT, 'models/default'));
  });

  it('rejects bad values and unknown flags with a message', () => {
    expect(() => loadConfig([], { PORT: 'eighty' })).toThrow(ConfigError);
    expect(() => loadConfig([], { PORT: '70000' })).toThrow(/PORT/);
    expect(() => loadConfig(['--nope'], {})).toThrow(ConfigError);
    expect(() => loadConfig([], { MODEL_VARIANT: 'int4' })).toThrow(/MODEL_VARIANT/);
  });

  it('--help lists every setting, and so does the README', () => {
    expect(loadConfig(['--help'], {})).toBe('help');
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    for (const s of SETTINGS) {
      expect(helpText()).toContain(`--${s.flag}`);
      expect(readme).toContain(`| \`${s.env}\` | \`--${s.flag}\` |`);
    }
  });
});
