import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { spawnGateway } from './helpers/process';
import { send, startGateway, startUpstream, until, writeTable } from './helpers/servers';

describe('streaming', () => {
  const GiB = 1024 * 1024 * 1024;
  const CHUNK = Buffer.alloc(1024 * 1024, 0x61);

  test('a 1 GiB upload and a 1 GiB download stream through in constant memory', async () => {
    let uploaded = 0;
    const up: Server = createServer((req, res) => {
      if (req.method === 'POST') {
        req.on('data', (c: Buffer) => (uploaded += c.length));
        req.on('end', () => res.end(String(uploaded)));
        return;
      }
      res.writeHead(200, { 'content-length': String(GiB) });
      let sent = 0;
      const pump = () => {
        while (sent < GiB) {
          sent += CHUNK.length;
          if (!res.write(CHUNK)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
    const upPort = (up.address() as AddressInfo).port;
    const gw = await spawnGateway(writeTable(`
upstreams: { big: { url: http://127.0.0.1:${upPort} } }
routes: [ { name: all, path: /, upstream: big } ]
log: { access: off }
`));
    try {
      const baseline = gw.peakRssMiB();
      // Upload: the client writes 1 GiB with back-pressure.
      const uploadReply = await new Promise<string>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: gw.port, method: 'POST', path: '/up', headers: { 'content-length': String(GiB) } }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve(body));
        });
        req.on('error', reject);
        let sent = 0;
        const pump = () => {
          while (sent < GiB) {
            sent += CHUNK.length;
            if (!req.write(CHUNK)) return void req.once('drain', pump);
          }
          req.end();
        };
        pump();
      });
      expect(Number(uploadReply)).toBe(GiB);
      // Download: the client reads 1 GiB.
      const downloaded = await new Promise<number>((resolve, reject) => {
        request({ host: '127.0.0.1', port: gw.port, path: '/down' }, (res) => {
          let n = 0;
          res.on('data', (c: Buffer) => (n += c.length));
          res.on('end', () => resolve(n));
          res.on('error', reject);
        })
          .on('error', reject)
          .end();
      });
      expect(downloaded).toBe(GiB);
      // 2 GiB went through; the gateway's peak memory grew by a small constant.
      expect(gw.peakRssMiB() - baseline).toBeLessThan(96);
    } finally {
      gw.child.kill('SIGTERM');
      await gw.exited;
      up.closeAllConnections();
      up.close();
    }
  }, 60_000);
});

describe('websockets', () => {
  test('an upgrade is routed, gets gateway headers, echoes through, and outlives the keep-alive timeout', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    const seen: Array<Record<string, string | string[] | undefined>> = [];
    wss.on('connection', (ws, req) => {
      seen.push({ url: req.url, ...req.headers });
      ws.on('message', (m) => ws.send(`echo:${m.toString()}`));
    });
    const wsPort = (wss.address() as AddressInfo).port;
    const http = await startUpstream();
    const gw = await startGateway(`
server: { keepAliveTimeoutMs: 300 }
upstreams: { live: { url: http://127.0.0.1:${wsPort} }, app: { url: ${http.url} } }
routes:
  - { name: app, path: /, upstream: app }
  - { name: live, path: /api/live, upstream: live, stripPrefix: /api }
  - { name: nows, path: /api/nows, upstream: live, websocket: false }
`);
    try {
      const client = new WebSocket(`ws://127.0.0.1:${gw.port}/api/live/feed?room=1`, { headers: { 'x-forwarded-for': '6.6.6.6', 'x-request-id': 'ws-1' } });
      const reply = await new Promise<string>((resolve, reject) => {
        client.on('open', () => client.send('hello'));
        client.on('message', (m) => resolve(m.toString()));
        client.on('error', reject);
      });
      expect(reply).toBe('echo:hello');
      expect(seen[0]).toMatchObject({ url: '/live/feed?room=1', 'x-forwarded-for': '127.0.0.1', 'x-request-id': 'ws-1' });
      // Silent for longer than keepAliveTimeoutMs: an upgraded connection is not an idle keep-alive one.
      await new Promise((r) => setTimeout(r, 900));
      const later = new Promise<string>((resolve) => client.once('message', (m) => resolve(m.toString())));
      client.send('still there');
      expect(await later).toBe('echo:still there');
      client.close();
      const refused = new WebSocket(`ws://127.0.0.1:${gw.port}/api/nows`);
      const status = await new Promise<number>((resolve) => refused.on('unexpected-response', (_req, res) => resolve(res.statusCode!)));
      expect(status).toBe(404);
      // Plain HTTP keeps working next to the upgraded connection.
      expect((await send(gw.port, '/x')).status).toBe(200);
    } finally {
      await gw.stop();
      await http.close();
      await new Promise<void>((r) => wss.close(() => r()));
    }
  });
});

describe('websocket shutdown', () => {
  test('a refused upgrade whose client keeps its half of the connection open does not hold shutdown', async () => {
    const http = await startUpstream();
    const gw = await startGateway(`
upstreams: { app: { url: ${http.url} } }
routes: [ { name: nows, path: /, upstream: app, websocket: false } ]
`);
    // allowHalfOpen: the client does not close its side when the gateway ends its own.
    const client = connect({ port: gw.port, host: '127.0.0.1', allowHalfOpen: true });
    let answer = '';
    let closed = false;
    client.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    client.on('close', () => (closed = true));
    try {
      client.write('GET /feed HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      await until(() => answer.includes('\r\n\r\n'));
      expect(answer).toMatch(/^HTTP\/1\.1 404/);
      const started = Date.now();
      await Promise.race([gw.stop(), new Promise((_, reject) => setTimeout(() => reject(new Error('stop() did not finish')), 5000))]);
      expect(Date.now() - started).toBeLessThan(5000);
      // The gateway let go of the socket: the client's write is now refused.
      const refused = await new Promise<boolean>((resolve) => {
        client.once('error', () => resolve(true));
        client.write('ping', () => setTimeout(() => client.write('ping', (err) => err && resolve(true)), 100));
        setTimeout(() => resolve(closed), 2000);
      });
      expect(refused).toBe(true);
    } finally {
      client.destroy();
      await gw.stop();
      await http.close();
    }
  });
});

describe('lifecycle', () => {
  test('SIGTERM stops accepting, finishes the in-flight slow request, then exits 0', async () => {
    const slow = await startUpstream((_req, res) => setTimeout(() => res.end('finished'), 800));
    const gw = await spawnGateway(writeTable(`
upstreams: { slow: { url: ${slow.url} } }
routes: [ { name: all, path: /, upstream: slow } ]
`));
    try {
      const pending = send(gw.port, '/slow');
      await until(() => slow.received.length === 1);
      gw.child.kill('SIGTERM');
      const r = await pending;
      expect(r.status).toBe(200);
      expect(r.body).toBe('finished');
      expect(await gw.exited).toBe(0);
      await expect(send(gw.port, '/after')).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      gw.child.kill('SIGKILL');
      await slow.close();
    }
  });

  test('every request has its access line in the file after SIGTERM, in order of completion', async () => {
    const up = await startUpstream();
    const dir = mkdtempSync(join(tmpdir(), 'strangler-access-'));
    const file = join(dir, 'access.log');
    const gw = await spawnGateway(writeTable(`
log: { access: ${file} }
upstreams: { app: { url: ${up.url} } }
routes: [ { name: all, path: /, upstream: app } ]
`));
    try {
      // ~1,500 lines: several 64 KiB batches, written while traffic continues.
      const ids: string[] = [];
      for (let round = 0; round < 30; round++) {
        const batch = Array.from({ length: 50 }, (_, i) => `access-${round}-${i}`);
        ids.push(...batch);
        await Promise.all(batch.map((id) => send(gw.port, `/item/${id}`, { headers: { 'x-request-id': id } })));
      }
      gw.child.kill('SIGTERM');
      expect(await gw.exited).toBe(0);
      const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { reqId: string; status: number; msg: string });
      expect(lines).toHaveLength(ids.length);
      expect(lines.map((l) => l.reqId).sort()).toEqual([...ids].sort());
      expect(lines.every((l) => l.status === 200 && l.msg === 'request')).toBe(true);
      // Batches land in order: every round's lines come after the previous round's.
      const rounds = lines.map((l) => Number(l.reqId.split('-')[1]));
      expect(rounds).toEqual([...rounds].sort((a, b) => a - b));
    } finally {
      gw.child.kill('SIGKILL');
      await up.close();
    }
  });

  test('access lines to a stdout pipe read late are all written before a graceful stop ends', async () => {
    const up = await startUpstream();
    const gw = await spawnGateway(writeTable(`
log: { access: stdout }
upstreams: { app: { url: ${up.url} } }
routes: [ { name: all, path: /, upstream: app } ]
`));
    try {
      // Nobody reads stdout for a while: the pipe fills and writes to it fail with EAGAIN.
      gw.child.stdout!.pause();
      const N = 2000;
      for (let round = 0; round < N / 50; round++) {
        await Promise.all(Array.from({ length: 50 }, (_, i) => send(gw.port, `/late/${round}-${i}`)));
      }
      gw.child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 1000));
      gw.child.stdout!.resume();
      expect(await gw.exited).toBe(0);
      const lines = gw.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; path?: string });
      expect(lines.filter((l) => l.msg === 'request' && l.path?.startsWith('/late/'))).toHaveLength(N);
      expect(lines.some((l) => l.msg === 'stopped')).toBe(true);
    } finally {
      gw.child.kill('SIGKILL');
      await up.close();
    }
  });

  test('the health path is served by the process and answers without an upstream', async () => {
    const gw = await spawnGateway(writeTable(`
server: { healthPath: /_gw/health }
upstreams: { none: { url: http://127.0.0.1:9 } }
routes: [ { name: all, path: /, upstream: none } ]
`));
    try {
      const r = await send(gw.port, '/_gw/health');
      expect(r.status).toBe(200);
    } finally {
      gw.child.kill('SIGTERM');
      expect(await gw.exited).toBe(0);
    }
  });
});

describe('what the running gateway loads', () => {
  const preload = join(__dirname, 'helpers', 'loadedPackages.js');

  async function loadedPackages(yaml: string, env: NodeJS.ProcessEnv = {}): Promise<string[]> {
    const out = join(mkdtempSync(join(tmpdir(), 'strangler-loaded-')), 'packages.txt');
    const gw = await spawnGateway(writeTable(yaml), { LOADED_PACKAGES_FILE: out, ...env }, ['-r', preload]);
    try {
      expect((await send(gw.port, '/_gw/health')).status).toBe(200);
      gw.child.kill('SIGUSR2');
      // Written on SIGUSR2: the file may exist a moment before its lines are in.
      await until(() => existsSync(out) && readFileSync(out, 'utf8').endsWith('\n'), 5000);
      return readFileSync(out, 'utf8').trim().split('\n');
    } finally {
      gw.child.kill('SIGTERM');
      await gw.exited;
    }
  }

  test('a table without admin or auth: no YAML parser, schema library, admin app, metrics library or JWT library', async () => {
    const loaded = await loadedPackages(`
server: { healthPath: /_gw/health }
upstreams: { none: { url: http://127.0.0.1:9 } }
routes: [ { name: all, path: /, upstream: none } ]
`);
    expect(loaded).toEqual(expect.arrayContaining(['http-proxy', 'opossum', 'pino']));
    for (const name of ['yaml', 'zod', 'koa', 'koa-router', 'prom-client', 'jose', 'undici', 'ioredis']) expect(loaded).not.toContain(name);
  });

  test('a route with a shadow loads the copies\' HTTP client (undici), and only then', async () => {
    const loaded = await loadedPackages(`
server: { healthPath: /_gw/health }
upstreams: { none: { url: http://127.0.0.1:9 }, next: { url: http://127.0.0.1:9 } }
routes: [ { name: all, path: /, upstream: none, shadow: { upstream: next } } ]
`);
    expect(loaded).toContain('undici');
  });

  test('admin and JWT auth load what they need, and tables are still parsed off the main thread', async () => {
    const loaded = await loadedPackages(
      `
server: { healthPath: /_gw/health }
admin: { port: 0 }
auth: { jwt: { secret: "\${JWT_SECRET}" } }
upstreams: { none: { url: http://127.0.0.1:9 } }
routes: [ { name: all, path: /, upstream: none, auth: required } ]
`,
      { JWT_SECRET: 'a-test-secret-of-at-least-32-bytes!!' },
    );
    expect(loaded).toEqual(expect.arrayContaining(['koa', 'koa-router', 'prom-client', 'jose']));
    for (const name of ['yaml', 'zod']) expect(loaded).not.toContain(name);
  });
});
