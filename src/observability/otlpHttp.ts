import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

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
