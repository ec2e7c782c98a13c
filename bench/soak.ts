/**
 * `npm run soak`: the gateway under minutes of mixed traffic, on loopback.
 * Keep-alive clients send GETs, POSTs and streamed downloads, some abort
 * mid-response, WebSockets echo, and the route table is rewritten every few
 * seconds. Every 10 s it prints requests, errors and the gateway's RSS; at the
 * end a summary, and every process it started is stopped.
 *
 *   node dist/bench/soak.js [--seconds 180] [--clients 20] [--shadow hang|refuse]
 *
 * --shadow copies every /api request to a shadow upstream that never answers
 * (hang) or refuses connections (refuse): the parallel run's worst case,
 * which must leave the clients' errors, latency and memory unchanged.
 *
 * An error is any answer other than the one the upstream gave (a gateway
 * error, a reset, a truncated body that was not aborted on purpose).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket, WebSocketServer } from 'ws';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? dflt : Number(args[i + 1]);
};
const SECONDS = opt('seconds', 180);
const CLIENTS = opt('clients', 20);
const SHADOW = args.includes('--shadow') ? args[args.indexOf('--shadow') + 1] : undefined;
/** Durations of the plain GETs (ms), for the clients' p50 and p99. */
const latencies: number[] = [];
const root = join(__dirname, '..', '..');

const stats = { requests: 0, errors: 0, aborts: 0, wsMessages: 0, wsErrors: 0, reloads: 0 };
const errorKinds = new Map<string, number>();
function error(kind: string): void {
  stats.errors++;
  errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
}

async function main(): Promise<void> {
  const upstream = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url!.startsWith('/api/stream')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        let n = 0;
        const tick = () => (n++ < 20 && !res.destroyed ? res.write(Buffer.alloc(16_384, 1), () => setImmediate(tick)) : res.end());
        tick();
        return;
      }
      const body = JSON.stringify({ url: req.url, got: Buffer.concat(chunks).length });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  const wss = new WebSocketServer({ server: upstream });
  wss.on('connection', (ws) => ws.on('message', (m) => ws.send(m)));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;

  // The shadow's worst cases: a server that accepts and never answers, or a port nobody listens on.
  const hanging = createServer(() => undefined);
  await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', r));
  const hangUrl = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}`;
  const refuseUrl = `http://127.0.0.1:${await freePort()}`;
  const shadowUrl = SHADOW === 'hang' ? hangUrl : refuseUrl;
  const shadowRoute = SHADOW === undefined ? '' : ', shadow: { upstream: shadow, percent: 100, timeoutMs: 2000 }';
  const dir = mkdtempSync(join(tmpdir(), 'strangler-soak-'));
  const tableFile = join(dir, 'routes.yaml');
  const table = (version: number) => `# version ${version}
server: { port: 0, host: 127.0.0.1 }
admin: { port: 0 }
log: { level: warn, access: off }
reload: { debounceMs: 50 }
upstreams:
  app: { url: ${upUrl}, timeoutMs: 5000 }
  api: { url: ${upUrl}, timeoutMs: 5000${version % 2 ? ', maxSockets: 512' : ''} }
  shadow: { url: ${shadowUrl} }
routes:
  - { name: api, path: /api, upstream: api${shadowRoute} }
  - { name: ws, path: /ws, upstream: app }
  - { name: v${version % 3}, path: /v${version % 3}, upstream: app }
  - { name: rest, path: /, upstream: app }
`;
  writeFileSync(tableFile, table(0));
  const port = await freePort();
  const gateway = spawn(process.execPath, ['--max-semi-space-size=4', join(root, 'dist', 'src', 'cli', 'index.js'), 'start', '--config', tableFile], {
    env: { ...process.env, PORT: String(port), STRANGLER_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await get(`${base}/healthz`)) === 200, 10_000);

  const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
  const until = Date.now() + SECONDS * 1000;
  let running = true;
  const started = Date.now();
  const rss: number[] = [];
  const report = setInterval(() => {
    const mb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${gateway.pid}/status`, 'utf8'))![1]) / 1024;
    rss.push(mb);
    process.stdout.write(`${String(Math.round((Date.now() - started) / 1000)).padStart(4)} s  requests ${stats.requests}  errors ${stats.errors}  aborts ${stats.aborts}  ws messages ${stats.wsMessages}  table rewrites ${stats.reloads}  RSS ${mb.toFixed(0)} MB\n`);
  }, 10_000);
  let version = 0;
  const reloader = setInterval(() => {
    // Renamed into place, as the operations guide says.
    writeFileSync(`${tableFile}.next`, table(++version));
    renameSync(`${tableFile}.next`, tableFile);
    stats.reloads++;
  }, 2_000);

  const client = async (i: number) => {
    let n = 0;
    while (running && Date.now() < until) {
      n++;
      const kind = (n + i) % 10;
      if (kind === 0) await abortMidResponse(base, agent);
      else if (kind === 1) await post(base, agent, n);
      else if (kind === 2) await streamed(base, agent);
      else await plain(base, agent, `/api/items/${n}?i=${i}`);
    }
  };
  const wsClient = async () => {
    while (running && Date.now() < until) await webSocketSession(port);
  };
  await Promise.all([...Array.from({ length: CLIENTS }, (_, i) => client(i)), wsClient(), wsClient()]);
  running = false;
  clearInterval(report);
  clearInterval(reloader);
  agent.destroy();
  gateway.kill('SIGTERM');
  await new Promise((r) => gateway.once('exit', r));
  wss.close();
  upstream.closeAllConnections();
  upstream.close();
  hanging.closeAllConnections();
  hanging.close();
  rmSync(dir, { recursive: true, force: true });
  const from30 = rss.slice(3);
  process.stdout.write(
    `\nsoak: ${SECONDS} s, ${CLIENTS} clients + 2 WebSocket clients${SHADOW ? `, every /api request copied to a shadow that ${SHADOW === 'hang' ? 'never answers' : 'refuses connections'}` : ''}\n` +
      `plain GETs: p50 ${quantile(0.5)} ms, p99 ${quantile(0.99)} ms\n` +
      `requests ${stats.requests}, errors ${stats.errors}${errorKinds.size ? ` (${[...errorKinds].map(([k, v]) => `${k}: ${v}`).join(', ')})` : ''}, deliberate aborts ${stats.aborts}\n` +
      `WebSocket messages echoed ${stats.wsMessages}, WebSocket errors ${stats.wsErrors}, table rewrites ${stats.reloads}\n` +
      `gateway RSS ${rss.length ? `${Math.min(...rss).toFixed(0)}-${Math.max(...rss).toFixed(0)} MB` : 'n/a'}${from30.length ? ` (from 30 s on: ${Math.min(...from30).toFixed(0)}-${Math.max(...from30).toFixed(0)} MB)` : ''}\n`,
  );
  process.exitCode = stats.errors + stats.wsErrors === 0 ? 0 : 1;
}

function quantile(q: number): string {
  if (latencies.length === 0) return 'n/a';
  const s = [...latencies].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!.toFixed(2);
}

function plain(base: string, agent: Agent, path: string): Promise<void> {
  return new Promise((resolve) => {
    const started = performance.now();
    const req = request(`${base}${path}`, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        // A bounded sample (reservoir of 200,000): memory stays flat however long the run.
        const ms = performance.now() - started;
        if (latencies.length < 200_000) latencies.push(ms);
        else latencies[Math.floor(Math.random() * 200_000)] = ms;
        stats.requests++;
        if (res.statusCode !== 200 || !body.includes('"url"')) error(`status ${res.statusCode}`);
        resolve();
      });
      res.on('error', () => (error('response error'), resolve()));
    });
    req.on('error', (e: NodeJS.ErrnoException) => (stats.requests++, error(e.code ?? 'request error'), resolve()));
    req.end();
  });
}

function post(base: string, agent: Agent, n: number): Promise<void> {
  return new Promise((resolve) => {
    const payload = Buffer.alloc(1000 + (n % 50_000), 7);
    const req = request(`${base}/api/orders`, { method: 'POST', agent, headers: { 'content-type': 'application/octet-stream', 'content-length': payload.length } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        stats.requests++;
        if (res.statusCode !== 200 || !body.includes(`"got":${payload.length}`)) error(`post ${res.statusCode}`);
        resolve();
      });
    });
    req.on('error', (e: NodeJS.ErrnoException) => (stats.requests++, error(e.code ?? 'post error'), resolve()));
    req.end(payload);
  });
}

function streamed(base: string, agent: Agent): Promise<void> {
  return new Promise((resolve) => {
    const req = request(`${base}/api/stream`, { agent }, (res) => {
      let size = 0;
      res.on('data', (c: Buffer) => (size += c.length));
      res.on('end', () => {
        stats.requests++;
        if (res.statusCode !== 200 || size !== 20 * 16_384) error('stream truncated');
        resolve();
      });
    });
    req.on('error', (e: NodeJS.ErrnoException) => (stats.requests++, error(e.code ?? 'stream error'), resolve()));
    req.end();
  });
}

/** Reads the start of a streamed response, then goes away (its own connection: the pool is not involved). */
function abortMidResponse(base: string, _agent: Agent): Promise<void> {
  return new Promise((resolve) => {
    const req = request(`${base}/api/stream`, { agent: false }, (res: IncomingMessage) => {
      res.once('data', () => {
        stats.aborts++;
        req.destroy();
        resolve();
      });
    });
    req.on('error', () => resolve());
    req.end();
  });
}

function webSocketSession(port: number): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/echo`);
    let sent = 0;
    const next = () => (sent < 20 ? ws.send(`m${sent++}`) : ws.close());
    ws.on('open', next);
    ws.on('message', () => {
      stats.wsMessages++;
      next();
    });
    ws.on('error', () => {
      stats.wsErrors++;
      resolve();
    });
    ws.on('close', () => resolve());
  });
}

function get(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

async function waitFor(check: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the gateway did not start');
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

main().catch((err) => {
  process.stderr.write(`soak failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
