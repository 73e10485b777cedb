/**
 * Runtime events, published once on `node:diagnostics_channel` by the part of the runtime that
 * owns them; observers (the metrics module, tests, an operator's tracer) subscribe. Nothing in
 * the runtime calls back into its observers, and publishing with no subscriber costs nothing.
 */
import diagnosticsChannel from 'node:diagnostics_channel';

/** Every event names the model whose runtime published it. */
interface ModelEvent {
  model: string;
}

/** A batch was handed to a worker. */
export interface BatchFormedEvent extends ModelEvent {
  size: number;
  /** Batch size × longest sequence. */
  paddedTokens: number;
  realTokens: number;
}

/** A batch came back from a worker. */
export interface BatchDoneEvent extends BatchFormedEvent {
  /** ONNX Runtime time for the batch, as the worker measured it. */
  inferenceMs: number;
}

/** Work refused or abandoned before it ran. */
export interface RejectedEvent extends ModelEvent {
  reason: 'queue_full' | 'deadline' | 'cancelled' | 'shutting_down';
  /** Inputs of the request that never ran. */
  inputs: number;
}

/** An inference worker failed and a replacement is starting. */
export interface WorkerRestartedEvent extends ModelEvent {
  cause: string;
}

export const CHANNEL_NAMES = {
  batchFormed: 'embedding-service:batch-formed',
  batchDone: 'embedding-service:batch-done',
  rejected: 'embedding-service:rejected',
  workerRestarted: 'embedding-service:worker-restarted',
} as const;

export interface RuntimeEvents {
  batchFormed: BatchFormedEvent;
  batchDone: BatchDoneEvent;
  rejected: RejectedEvent;
  workerRestarted: WorkerRestartedEvent;
}

export type RuntimeEventName = keyof RuntimeEvents;

const channels = Object.fromEntries(Object.entries(CHANNEL_NAMES).map(([key, name]) => [key, diagnosticsChannel.channel(name)])) as Record<
  RuntimeEventName,
  diagnosticsChannel.Channel
>;

export function publish<K extends RuntimeEventName>(event: K, message: RuntimeEvents[K]): void {
  const channel = channels[event];
  if (channel.hasSubscribers) channel.publish(message);
}

/** Subscribes to one event; returns the unsubscribe function. */
export function subscribe<K extends RuntimeEventName>(event: K, listener: (message: RuntimeEvents[K]) => void): () => void {
  const onMessage = (message: unknown): void => listener(message as RuntimeEvents[K]);
  diagnosticsChannel.subscribe(CHANNEL_NAMES[event], onMessage);
  return () => diagnosticsChannel.unsubscribe(CHANNEL_NAMES[event], onMessage);
}
