/**
 * The HTTP server's defences against hostile or careless clients, decided in one place: bounded
 * connections, time limits on slow headers and slow bodies, a JSON parser with a nesting bound,
 * event-loop shedding that cannot throw, credential redaction in logged URLs, and the contract's
 * error shape on every response Node or Fastify would otherwise write in their own.
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, SERVER_ERRORS, type ServerErrorCode, STATUS } from './errors/catalogue.js';
import { sendError } from './errors/reply.js';

export interface ConnectionLimits {
  /** Most open client connections; beyond it a new connection gets 503 and is closed. */
  maxConnections: number;
  /** Longest a client may take to send its request headers. */
  headersTimeoutMs: number;
  /** Longest a client may take to send a whole request, headers and body. */
  requestReadTimeoutMs: number;
  /** How often Node checks the two timeouts above (its own default is 30 s). */
  checkIntervalMs: number;
}

/** The process's soft limit on open files (Linux: /proc/self/limits), when it can be read. */
export function openFileLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m && m[1] !== 'unlimited' ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Default connection bound: three quarters of the open-file limit, at most 8192. The other
 * quarter is left for what the process itself opens (model files, workers' pipes, one log per
 * collection, snapshot files, /proc reads of the metrics), so sockets can never exhaust the
 * descriptors; 8192 concurrent connections already far exceed what the batch queue can serve.
 */
export function defaultMaxConnections(limit = openFileLimit()): number {
  return limit === undefined ? 4096 : Math.max(16, Math.min(8192, Math.floor(limit * 0.75)));
}

/** Options for http.createServer and Fastify's own timeouts. */
export function serverTimeouts(limits: ConnectionLimits): {
  http: { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number };
  requestTimeout: number;
} {
  return {
    http: {
      headersTimeout: Math.min(limits.headersTimeoutMs, limits.requestReadTimeoutMs),
      requestTimeout: limits.requestReadTimeoutMs,
      connectionsCheckingInterval: limits.checkIntervalMs,
    },
    requestTimeout: limits.requestReadTimeoutMs,
  };
}

/** The contract's error body for a response written on the raw socket, outside Fastify. */
function errorJson(code: ServerErrorCode, message: string, openAi: boolean): string {
  const type = SERVER_ERRORS[code].type;
  return openAi
    ? JSON.stringify({
        error: { message, type: type === 'unavailable' ? 'server_error' : 'invalid_request_error', param: null, code: type },
      })
    : JSON.stringify({ error: message, error_type: type, error_code: code });
}

function rawResponse(status: number, body: string, extra = ''): string {
  return (
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`
  );
}

const STATUS_TEXT: Record<number, string> = { 413: 'Payload Too Large', 422: 'Unprocessable Entity', 503: 'Service Unavailable' };

/** Whether raw request bytes (what Node's parser rejected) were addressed to the OpenAI routes. */
function rawIsOpenAi(err: { rawPacket?: unknown }): boolean {
  const head = Buffer.isBuffer(err.rawPacket) ? err.rawPacket.subarray(0, 64).toString('latin1') : '';
  return /^[A-Z]+ \/v1\//.test(head);
}

/**
 * Node's own rejections of a request (malformed, headers over the limit, too slow), answered in
 * the contract's shape instead of Fastify's. Headers over the limit are a 413; everything else a
 * client got wrong at the HTTP level, including taking too long to send it, is a 422.
 */
export function clientErrorHandler(this: FastifyInstance, error: Error, socket: Socket): void {
  const err = error as NodeJS.ErrnoException & { rawPacket?: Buffer };
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const e =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new ApiError('HEADERS_TOO_LARGE')
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new ApiError('REQUEST_READ_TIMEOUT')
        : err.code === 'HPE_INVALID_CONTENT_LENGTH' || err.code === 'HPE_UNEXPECTED_CONTENT_LENGTH'
          ? new ApiError('INVALID_CONTENT_LENGTH')
          : new ApiError('MALFORMED_HTTP', err.code ?? err.message);
  this.log.debug({ code: err.code }, 'client error');
  if (socket.writable) socket.write(rawResponse(STATUS[SERVER_ERRORS[e.code].type], errorJson(e.code, e.message, rawIsOpenAi(err))));
  socket.destroy();
}

/** Fastify's framework errors (a URL that does not decode) in the contract's shape. */
export function frameworkErrors(err: Error, request: FastifyRequest, reply: FastifyReply): void {
  const code = (err as { code?: string }).code;
  sendError(request, reply, code === 'FST_ERR_BAD_URL' ? new ApiError('BAD_URL') : new ApiError('FRAMEWORK_REJECTED', err.message));
}

/**
 * Caps open connections below the file-descriptor limit: a connection past `max` is answered
 * 503 (with Retry-After) and closed at once, so a flood of idle sockets cannot exhaust
 * descriptors and bring the process down. Returns the live count, for tests and metrics.
 */
export function limitConnections(server: Server | NetServer, max: number, log: FastifyInstance['log']): { open: () => number } {
  let open = 0;
  let refusedSinceLog = 0;
  const refusal = rawResponse(
    503,
    errorJson('CONNECTION_LIMIT', new ApiError('CONNECTION_LIMIT', max).message, false),
    'Retry-After: 1\r\n',
  );
  server.on('connection', (socket: Socket) => {
    if (open >= max) {
      if (refusedSinceLog++ === 0) {
        setTimeout(() => {
          log.warn({ refused: refusedSinceLog, maxConnections: max }, 'connection limit reached; refusing new connections');
          refusedSinceLog = 0;
        }, 1000).unref();
      }
      socket.on('error', () => undefined);
      socket.end(refusal);
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    open++;
    socket.once('close', () => open--);
  });
  // accept() failing (EMFILE, ENFILE) is an event on the listening server, not a reason to exit.
  server.on('error', (err) => log.error({ err }, 'server socket error'));
  return { open: () => open };
}

/**
 * Sheds requests with 503 while the event loop lags beyond `maxDelayMs`. Only the event-loop
 * delay histogram is read: nothing here opens a file (process.memoryUsage() reads /proc and
 * throws EMFILE when descriptors run out), so monitoring cannot take the process down.
 */
export function shedOnEventLoopDelay(app: FastifyInstance, maxDelayMs: number, exempt: (request: FastifyRequest) => boolean): void {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  let delayMs = 0;
  let timer: NodeJS.Timeout | undefined;
  // Sampling starts once the app is ready: building it (schemas, routes) is one long synchronous
  // stretch that says nothing about load and would shed the first requests.
  app.addHook('onReady', async () => {
    histogram.enable();
    let last = performance.now();
    timer = setInterval(() => {
      // The histogram's own timer may not have recorded a stall that just ended when this one
      // fires first, so this timer's lateness counts too.
      const now = performance.now();
      const late = now - last - 1000;
      last = now;
      const mean = histogram.mean / 1e6 - 10;
      delayMs = Math.max(0, Number.isNaN(mean) ? 0 : mean, late);
      histogram.reset();
    }, 1000);
    timer.unref();
  });
  app.addHook('onClose', async () => {
    if (timer) clearInterval(timer);
    histogram.disable();
  });
  app.addHook('onRequest', async (request) => {
    if (delayMs > maxDelayMs && !exempt(request)) {
      throw new ApiError('EVENT_LOOP_LAGGING');
    }
  });
}

/** Answers every request arriving after shutdown began with 503, Retry-After and Connection: close. */
export function refuseWhileClosing(app: FastifyInstance): void {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (_request, reply) => {
    if (closing) {
      reply.header('connection', 'close');
      throw new ApiError('SERVER_CLOSING');
    }
  });
}

// --- JSON bodies --------------------------------------------------------------------------------

/**
 * How deep a JSON body may nest before it is refused. The deepest legitimate body (metadata
 * filters, nested metadata) is a few levels; the index bounds metadata itself more tightly.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * Finds how deep `text` nests, stopping as soon as it passes `max`: one pass over the characters,
 * skipping strings, with no allocation. Returns the offset of the bracket that went too deep, or -1.
 */
export function nestingBeyond(text: string, max: number): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return i;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return -1;
}

/** Where a parsed JSON value has an own `__proto__` key, if anywhere (depth is already bounded). */
function protoKeyPath(v: unknown, path: string): string | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const el: unknown = v[i];
      if (typeof el === 'object' && el !== null) {
        const found = protoKeyPath(el, `${path}[${i}]`);
        if (found) return found;
      }
    }
    return undefined;
  }
  if (Object.hasOwn(v, '__proto__')) return `${path}.__proto__`;
  for (const [k, el] of Object.entries(v)) {
    const found = protoKeyPath(el, `${path}.${k}`);
    if (found) return found;
  }
  return undefined;
}

/**
 * The JSON body parser of every route: the nesting bound is checked on the raw text before
 * JSON.parse builds anything, and a `__proto__` key (which JSON.parse would make an own property
 * that later object spreads or assignments may turn into a prototype) is refused by name rather
 * than reported as unparsable.
 */
export function parseJsonBody(maxDepth: number) {
  return (_request: FastifyRequest, body: string, done: (err: Error | null, value?: unknown) => void): void => {
    if (body.length === 0) {
      done(new ApiError('EMPTY_JSON_BODY'));
      return;
    }
    const at = nestingBeyond(body, maxDepth);
    if (at >= 0) {
      done(new ApiError('JSON_TOO_DEEP', maxDepth, at));
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch (err) {
      done(new ApiError('INVALID_JSON', (err as Error).message));
      return;
    }
    const proto = protoKeyPath(value, 'body');
    if (proto !== undefined) {
      done(new ApiError('PROTO_KEY', proto));
      return;
    }
    done(null, value);
  };
}

// --- Logging --------------------------------------------------------------------------------------

const CREDENTIAL_PARAM =
  /^(api[-_]?key|key|token|access[-_]?token|auth|authorization|secret|password|passwd|pwd|sig|signature|session|bearer|credentials?)$/i;

/** The URL with credential-looking query parameters replaced by `[REDACTED]`, for logs. */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const parts = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const rawName = eq < 0 ? pair : pair.slice(0, eq);
      let name = rawName;
      try {
        name = decodeURIComponent(rawName.replace(/\+/g, ' '));
      } catch {
        // undecodable: judge the raw name
      }
      return CREDENTIAL_PARAM.test(name.trim()) || /key|token|secret|passw/i.test(name) ? `${rawName}=[REDACTED]` : pair;
    });
  return `${url.slice(0, q)}?${parts.join('&')}`;
}

/** pino serializer for Fastify's request logs (its own fields), with credentials redacted from the URL. */
export const logSerializers = {
  req(request: FastifyRequest) {
    return {
      method: request.method,
      url: redactUrl(request.url),
      host: request.host,
      remoteAddress: request.ip,
      remotePort: request.socket ? request.socket.remotePort : undefined,
    };
  },
};
