import { existsSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

/**
 * Sends one OTLP request body (encoded spans); `done(false)` when it was not
 * accepted. Returns a way to give it up. The body's memory is the
 * transport's from then on: the batch processor never touches it again.
 */
export type OtlpTransport = (body: Buffer, done: (ok: boolean) => void) => (() => void) | void;

/**
 * OTLP/HTTP with protobuf bodies (OTLP's default, `http/protobuf`), over
 * `node:http`: one keep-alive pool, one deadline per export, no retry (a
 * batch that fails is counted as dropped; the next one is on its way). The
 * SDK's exporter loads `http` with a dynamic import, which Jest's CommonJS
 * runtime cannot follow, and retries on its own schedule.
 */
export function otlpHttp(url: string, headers: Record<string, string>, timeoutMs: number): { send: OtlpTransport; close(): void } {
  const target = new URL(url);
  const https = target.protocol === 'https:';
  const agent = https ? new HttpsAgent({ keepAlive: true, maxSockets: 2 }) : new HttpAgent({ keepAlive: true, maxSockets: 2 });
  const request = https ? httpsRequest : httpRequest;
  const send: OtlpTransport = (body, done) => {
    let answered = false;
    const finish = (ok: boolean) => {
      if (answered) return;
      answered = true;
      done(ok);
    };
    const req = request(target, { method: 'POST', agent, timeout: timeoutMs, headers: { ...headers, 'content-type': 'application/x-protobuf', 'content-length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => finish(res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300));
      res.on('error', () => finish(false));
    });
    req.on('timeout', () => req.destroy(new Error('the collector did not answer in time')));
    req.on('error', () => finish(false));
    req.end(body);
    return () => req.destroy();
  };
  return { send, close: () => agent.destroy() };
}

/** Messages to the export thread, and its answers. */
export type ExportMessage = { id: number; body: ArrayBuffer; offset: number; length: number } | { cancel: number };
export interface ExportAnswer {
  id: number;
  ok: boolean;
}

/**
 * `otlpHttp` in a thread of its own (`otlpWorker.ts`), so the exports run in
 * another V8 isolate than the requests. In the same isolate, the export's
 * HTTP client calls go through the same Node functions as the proxy's
 * upstream calls (ClientRequest, OutgoingMessage, the Agent, the parser)
 * with objects of other shapes: V8 then optimises those shared functions
 * for both, and every proxied request paid for it. Measured paired in time
 * on the bench's *full* table: `sampleRatio: 0.1` went from 0.72–0.80 × the
 * requests of tracing off to 0.96–0.99 × when the export did not go through
 * `node:http` (docs/performance.md#tracing).
 *
 * The batch's buffer is transferred, not copied. The thread is started at
 * the first export and ended by `close()`; if it dies, the exports it held
 * fail (counted as dropped) and the next export starts a new one. Where the
 * compiled worker is missing (a TypeScript-only checkout), exports run in
 * process.
 */
export function otlpExporter(url: string, headers: Record<string, string>, timeoutMs: number): { send: OtlpTransport; close(): void } {
  // Under ts-jest this file is TypeScript; the compiled worker lives in dist/ (built before the tests).
  const file = __filename.endsWith('.ts') ? join(__dirname, '..', '..', 'dist', 'src', 'observability', 'otlpWorker.js') : join(__dirname, 'otlpWorker.js');
  if (!existsSync(file)) return otlpHttp(url, headers, timeoutMs);
  let worker: Worker | undefined;
  let closed = false;
  let nextId = 0;
  const pending = new Map<number, (ok: boolean) => void>();
  const start = (): Worker => {
    if (worker !== undefined) return worker;
    // A small young generation: this isolate only holds one batch at a time.
    const w = new Worker(file, { workerData: { url, headers, timeoutMs }, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
    w.unref();
    w.on('message', (m: ExportAnswer) => {
      const done = pending.get(m.id);
      pending.delete(m.id);
      done?.(m.ok);
    });
    const gone = () => {
      if (worker === w) worker = undefined;
      for (const done of pending.values()) done(false);
      pending.clear();
    };
    w.on('error', gone);
    w.on('exit', gone);
    worker = w;
    return w;
  };
  const send: OtlpTransport = (body, done) => {
    if (closed) {
      done(false);
      return;
    }
    const w = start();
    const id = nextId++;
    pending.set(id, done);
    w.postMessage({ id, body: body.buffer as ArrayBuffer, offset: body.byteOffset, length: body.length } satisfies ExportMessage, [body.buffer as ArrayBuffer]);
    return () => {
      pending.delete(id);
      worker?.postMessage({ cancel: id } satisfies ExportMessage);
    };
  };
  const close = () => {
    closed = true;
    const w = worker;
    worker = undefined;
    if (w !== undefined) void w.terminate();
    for (const done of pending.values()) done(false);
    pending.clear();
  };
  return { send, close };
}
