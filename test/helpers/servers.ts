import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Gateway } from '../../src/server';

/** What a recording upstream received. */
export interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

export interface Upstream {
  server: Server;
  port: number;
  url: string;
  received: Received[];
  close(): Promise<void>;
}

export type Behaviour = (req: IncomingMessage, res: ServerResponse, body: string) => void;

const answerJson: Behaviour = (req, res, body) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ url: req.url, method: req.method, bodyLength: body.length }));
};

/** A real upstream on 127.0.0.1:0 that records every request it gets, then runs `behaviour`. */
export async function startUpstream(behaviour: Behaviour = answerJson, opts: { recordBody?: boolean } = {}): Promise<Upstream> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    if (opts.recordBody === false) {
      received.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: '' });
      behaviour(req, res, '');
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      received.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body });
      behaviour(req, res, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    received,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A port that nothing listens on (bound then released). */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Collects log lines (JSON) written by the gateway. */
export class LogCapture extends Writable {
  readonly lines: Array<Record<string, unknown>> = [];
  readonly raw: string[] = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    for (const line of chunk.toString().split('\n')) {
      if (!line) continue;
      this.raw.push(line);
      try {
        this.lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not JSON: kept in raw only
      }
    }
    cb();
  }
  text(): string {
    return this.raw.join('\n');
  }
}

export function writeTable(yaml: string, dir = mkdtempSync(join(tmpdir(), 'strangler-'))): string {
  const file = join(dir, 'routes.yaml');
  writeFileSync(file, yaml);
  return file;
}

export interface TestGateway {
  gw: Gateway;
  url: string;
  port: number;
  logs: LogCapture;
  configPath: string;
  stop(): Promise<void>;
}

/** Starts an in-process gateway on 127.0.0.1:0 with `yaml` as its route table; logs are captured. */
export async function startGateway(yaml: string, env: NodeJS.ProcessEnv = {}): Promise<TestGateway> {
  const configPath = writeTable(yaml);
  const logs = new LogCapture();
  const gw = await Gateway.start({ configPath, port: 0, host: '127.0.0.1', env, logOutputs: { main: logs } });
  return { gw, url: gw.url, port: gw.port, logs, configPath, stop: () => gw.stop() };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

/** A raw request (no URL normalisation by a client library: the path is sent as written). */
export function send(
  port: number,
  path: string,
  opts: { method?: string; headers?: Record<string, string | string[]>; body?: string | Buffer; agent?: false } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

export function json(reply: Reply): any {
  return JSON.parse(reply.body);
}

export function until(check: () => boolean, timeoutMs = 3000, stepMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() > deadline) return reject(new Error('condition not met in time'));
      setTimeout(tick, stepMs);
    };
    tick();
  });
}
