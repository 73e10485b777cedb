/**
 * Several models in one process: every model's directory is read and its precision chosen once,
 * here, on the main thread; one pool of workers is started in which each worker holds every
 * model's graphs (loaded once per worker); each model gets its own queue and limits, and one
 * scheduler shares the workers between the queues. The first model is the default.
 */
import os from 'node:os';
import { describeModel, type ModelDescription } from './description.js';
import type { ModelSet } from './embedder.js';
import { defaultLimits, defaultThreading, Engine, type ModelEntry, type RuntimeOptions } from './engine.js';
import { ModelDirError } from './model-dir.js';
import { WorkerPool } from './pool.js';
import type { ModelWorkerConfig } from './protocol.js';
import { Scheduler } from './scheduler.js';
import { TextTokenizer } from './tokenize.js';

/** Model names clients send: short, URL- and label-safe. */
export const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

export interface ModelsOptions extends RuntimeOptions {
  /** The served models; the first is the default. */
  models: ModelEntry[];
}

export class Models implements ModelSet {
  private readonly byName = new Map<string, Engine>();
  private closing: Promise<void> | null = null;

  private constructor(
    readonly pool: WorkerPool,
    readonly scheduler: Scheduler,
    readonly threading: { workers: number; intraOpThreads: number },
  ) {}

  static async load(options: ModelsOptions): Promise<Models> {
    if (options.models.length === 0) throw new ModelDirError('no model to serve');
    const seen = new Set<string>();
    for (const m of options.models) {
      if (!MODEL_NAME.test(m.name))
        throw new ModelDirError(`model name ${JSON.stringify(m.name)} must be 1–64 of [A-Za-z0-9._:-], starting with a letter or digit`);
      if (seen.has(m.name)) throw new ModelDirError(`model name ${m.name} is given twice`);
      seen.add(m.name);
    }
    const log = options.log;
    const loaded: Array<{ entry: ModelEntry; description: ModelDescription; tokenizer: TextTokenizer }> = [];
    for (const entry of options.models) {
      const prefix = options.models.length > 1 ? `model ${entry.name}: ` : '';
      const description = await describeModel(
        {
          modelDir: entry.dir,
          variant: entry.variant,
          onnxFile: entry.onnxFile,
          layerExit: options.layerExit,
          quantize: entry.quantize,
          quantizeFloor: options.quantizeFloor,
        },
        log && ((level, msg) => log(level, prefix + msg)),
      );
      loaded.push({ entry, description, tokenizer: new TextTokenizer(description.spec) });
    }
    const defaults = defaultThreading(os.availableParallelism(), options.workers);
    const threading = { workers: defaults.workers, intraOpThreads: options.intraOpThreads ?? defaults.intraOpThreads };
    const graphs: ModelWorkerConfig[] = loaded.map(({ description: { spec, graphs: g } }) => ({
      task: spec.task,
      graphs: { unsplit: g.unsplit, stagesDir: g.stages.ok ? g.stages.dir : null },
      pooling: spec.pooling,
      paddingSide: spec.paddingSide,
      hiddenSize: spec.hiddenSize,
      numLayers: spec.numLayers,
      finalNormOnExit: spec.finalNormOnExit,
      tokenPrepending: spec.tokenPrepending
        ? { firstLayer: spec.tokenPrepending.firstLayer, lastLayer: spec.tokenPrepending.lastLayer }
        : null,
    }));
    const pool = await WorkerPool.start({
      model: options.models.map((m) => m.name).join(','),
      workers: threading.workers,
      worker: {
        memoryArena: options.memoryArena ?? false,
        providers: options.executionProviders ?? ['cpu'],
        intraOpThreads: threading.intraOpThreads,
        nice: options.inferenceNice ?? 10,
        models: graphs,
      },
      log,
    });
    const scheduler = new Scheduler(pool, options.scheduling ?? 'fair');
    const models = new Models(pool, scheduler, threading);
    loaded.forEach(({ entry, description, tokenizer }, index) => {
      const spec = description.spec;
      const limits = { ...defaultLimits(spec), ...options.limits, ...entry.limits };
      const budgetConfigured = options.limits?.maxBatchTokens !== undefined || entry.limits?.maxBatchTokens !== undefined;
      const lane = scheduler.lane(entry.name);
      models.byName.set(entry.name, new Engine(entry.name, description, tokenizer, models, lane, index, limits, budgetConfigured, log));
    });
    log?.(
      'info',
      `execution provider: ${pool.info.provider} (${threading.workers} worker(s) × ${threading.intraOpThreads} thread(s); models: ${[...models.byName.values()].map((e) => `${e.name} (${e.task})`).join(', ')})`,
    );
    return models;
  }

  /** The default model: the first configured. */
  get default(): Engine {
    return this.byName.values().next().value!;
  }

  /** The first model that does `task` (the default for requests of that kind that name none). */
  firstFor(task: Engine['task']): Engine | undefined {
    return this.all.find((e) => e.task === task);
  }

  /** A model by name; undefined for an unknown name. */
  get(name: string): Engine | undefined {
    return this.byName.get(name);
  }

  get all(): readonly Engine[] {
    return [...this.byName.values()];
  }

  get names(): string[] {
    return [...this.byName.keys()];
  }

  get isReady(): boolean {
    return this.all.every((e) => e.isReady);
  }

  /** Warms every model up (one at a time: each probes its batch budget on the whole machine). */
  async warmUp(): Promise<void> {
    for (const engine of this.all) await engine.warmUp();
  }

  /** Stops taking work, lets queued and running work finish within `drainMs`, then stops the workers. */
  close(drainMs = 0): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all(this.all.map((e) => e.closeQueue(drainMs)));
      await this.pool.close();
    })();
    return this.closing;
  }
}
