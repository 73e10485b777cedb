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

  it('rejects bad values and unknown flags with a message naming the setting', () => {
    expect(() => loadConfig([], { PORT: 'eighty' })).toThrow(ConfigError);
    expect(() => loadConfig([], { PORT: '70000' })).toThrow(/^PORT \/ --port: must be <= 65535/);
    expect(() => loadConfig(['--nope'], {})).toThrow(ConfigError);
    expect(() => loadConfig([], { MODEL_VARIANT: 'int4' })).toThrow(/^MODEL_VARIANT .*allowed values/);
    expect(() => loadConfig([], { INFERENCE_NICE: '20' })).toThrow(/^INFERENCE_NICE/);
    expect(() => loadConfig([], { QUANTIZE_MIN_AGREEMENT: '1.5' })).toThrow(/^QUANTIZE_MIN_AGREEMENT/);
    expect(() => loadConfig(['--workers', '0'], {})).toThrow(/^WORKERS \/ --workers: must be >= 1/);
  });

  it('types values by the schema: integers, numbers, lists, and unset optional settings', () => {
    const c = loadConfig(['--max-queue-delay-ms', '0'], {
      QUANTIZE_MIN_AGREEMENT: '0.95',
      CORS_ORIGINS: 'https://a.example, https://b.example',
      WORKERS: '',
    });
    if (c === 'help') throw new Error('unexpected help');
    expect(c).toMatchObject({
      maxQueueDelayMs: 0,
      quantizeMinAgreement: 0.95,
      corsOrigins: ['https://a.example', 'https://b.example'],
      executionProviders: ['cpu'],
    });
    expect(c.workers).toBeUndefined();
    expect(c.publicRoutes).toEqual(['/health', '/ready', '/metrics']);
  });

  it('--help and the README document the settings operators rely on', () => {
    expect(loadConfig(['--help'], {})).toBe('help');
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    // Written out here, not read from SETTINGS: removing or renaming one of these must fail.
    const documented = [
      'PORT',
      'MODEL_DIR',
      'WORKERS',
      'MAX_BATCH_TOKENS',
      'MAX_INPUTS',
      'API_KEYS',
      'CORS_ORIGINS',
      'DATA_DIR',
      'SHUTDOWN_TIMEOUT_MS',
      'LOG_LEVEL',
    ];
    for (const env of documented) {
      const s = SETTINGS.find((x) => x.env === env);
      expect(s, env).toBeDefined();
      expect(helpText()).toMatch(new RegExp(`--${s!.flag} +${env} `));
      expect(readme).toContain(`| \`${env}\` | \`--${s!.flag}\` |`);
    }
    expect(helpText()).toMatch(/--port +PORT +Port to listen on \(default: 8080\)/);
    for (const s of SETTINGS) expect(readme, s.env).toContain(`| \`${s.env}\` | \`--${s.flag}\` |`);
  });
});
