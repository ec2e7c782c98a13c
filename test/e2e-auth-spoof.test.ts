/**
 * Identity headers are the gateway's: a client's X-User-* (in any case, with
 * `_` for `-`) never reaches an upstream as sent, on public and protected
 * routes, over plain HTTP and WebSocket upgrades, with or without an `auth`
 * block. Requests are written with raw header lists so that every spelling
 * is sent as-is, and the upstreams check their rawHeaders.
 */
import { request } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { WebSocket, WebSocketServer } from 'ws';
import { startGateway, startUpstream, until, type Reply, type TestGateway, type Upstream } from './helpers/servers';

const SECRET = 'spoof-test-secret-0123456789abcdef';

function token(sub: string, roles: string[]): Promise<string> {
  return new SignJWT({ jti: randomUUID(), roles })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(SECRET));
}

/** Every spelling a client might use; the values are what must never arrive. */
const SPOOFED: string[] = [
  'X-User-Id', 'attacker-1',
  'x-user-id', 'attacker-2',
  'X-User_Id', 'attacker-3',
  'X-USER-ID', 'attacker-4',
  'x_user_id', 'attacker-5',
  'X-User-Roles', 'admin',
  'x-user_roles', 'superuser',
  'X-User-Email', 'attacker@evil.test',
  'X_USER_EMAIL', 'attacker2@evil.test',
];
const SPOOFED_VALUES = SPOOFED.filter((_, i) => i % 2 === 1);

/** A GET whose headers are sent exactly as listed (names, case, duplicates). */
function sendRaw(port: number, path: string, headers: string[]): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', headers: ['Host', `127.0.0.1:${port}`, ...headers], agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A WebSocket handshake written by hand (so header spellings are exact); resolves with the status line. */
function rawUpgrade(port: number, path: string, headers: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let lines = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n`;
    for (let i = 0; i < headers.length; i += 2) lines += `${headers[i]}: ${headers[i + 1]}\r\n`;
    let got = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no handshake answer; got ${JSON.stringify(got)}`));
    }, 3000);
    socket.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      if (got.includes('\r\n\r\n')) {
        clearTimeout(timer);
        socket.destroy();
        resolve(got.slice(0, got.indexOf('\r\n')));
      }
    });
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.write(`${lines}\r\n`);
  });
}

/** Identity-like header names in a raw header list (`_` read as `-`, any case), with their values. */
function identityHeaders(raw: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < raw.length; i += 2) if (/^x-user-/.test(raw[i]!.toLowerCase().replace(/_/g, '-'))) out.push([raw[i]!.toLowerCase(), raw[i + 1]!]);
  return out;
}

function expectNoClientValues(raw: string[]): void {
  for (const v of SPOOFED_VALUES) expect(raw).not.toContain(v);
  expect(raw.join('\n')).not.toMatch(/attacker|superuser|evil\.test/);
}

interface WsUpstream {
  wss: WebSocketServer;
  port: number;
  seen: Array<{ url: string; headers: Record<string, unknown>; rawHeaders: string[] }>;
  close(): Promise<void>;
}

async function startWsUpstream(): Promise<WsUpstream> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const seen: WsUpstream['seen'] = [];
  wss.on('connection', (ws, req) => {
    seen.push({ url: req.url!, headers: { ...req.headers }, rawHeaders: [...req.rawHeaders] });
    ws.on('message', (m) => ws.send(`echo:${m.toString()}`));
  });
  return {
    wss,
    port: (wss.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => r());
      }),
  };
}

/** Opens a WebSocket through the gateway with `headers`, checks the echo, and closes it. */
async function wsRoundTrip(port: number, path: string, headers: Record<string, string>): Promise<void> {
  const client = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers });
  try {
    const reply = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no echo in time')), 3000);
      client.on('open', () => client.send('hi'));
      client.on('message', (m) => {
        clearTimeout(timer);
        resolve(m.toString());
      });
      client.on('unexpected-response', (_req, res) => {
        clearTimeout(timer);
        reject(new Error(`upgrade refused with ${res.statusCode}`));
      });
      client.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    expect(reply).toBe('echo:hi');
  } finally {
    client.terminate();
  }
}

/** The status a refused upgrade gets. */
function wsRefusal(port: number, path: string, headers: Record<string, string> = {}): Promise<number> {
  const client = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers });
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no answer in time')), 3000);
    client.on('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      resolve(res.statusCode!);
      client.terminate();
    });
    client.on('open', () => {
      clearTimeout(timer);
      client.terminate();
      reject(new Error('upgrade was accepted'));
    });
    client.on('error', () => undefined);
  });
}

/** The ws client takes an object: distinct names only (case variants would collapse). */
const WS_SPOOF: Record<string, string> = {
  'X-User-Id': 'attacker-1',
  'X-User_Id': 'attacker-3',
  x_user_id: 'attacker-5',
  'X-User-Roles': 'admin',
  'x-user_roles': 'superuser',
  'X-User-Email': 'attacker@evil.test',
};

describe('identity header spoofing with an auth block', () => {
  let up: Upstream;
  let live: WsUpstream;
  let gw: TestGateway;
  beforeAll(async () => {
    up = await startUpstream();
    live = await startWsUpstream();
    gw = await startGateway(
      `
auth:
  jwt: { secret: "\${JWT_SECRET}" }
reload: { watch: false }
upstreams: { app: { url: ${up.url} }, live: { url: http://127.0.0.1:${live.port} } }
routes:
  - { name: public, path: /public, upstream: app, auth: none }
  - { name: soft, path: /soft, upstream: app, auth: optional }
  - { name: private, path: /private, upstream: app, auth: required }
  - { name: ws-public, path: /ws/public, upstream: live, auth: none }
  - { name: ws-private, path: /ws/private, upstream: live, auth: required }
`,
      { JWT_SECRET: SECRET },
    );
  });
  afterAll(async () => {
    await gw?.stop();
    await live?.close();
    await up?.close();
  });
  beforeEach(() => {
    up.received.length = 0;
    live.seen.length = 0;
  });

  test('public route: no client-sent identity header arrives, in any spelling', async () => {
    const r = await sendRaw(gw.port, '/public/x', SPOOFED);
    expect(r.status).toBe(200);
    const raw = up.received[0]!.rawHeaders;
    expect(identityHeaders(raw)).toEqual([]);
    expectNoClientValues(raw);
  });

  test('X-Strangler-Identity from a client never arrives when the internal token is off', async () => {
    const r = await sendRaw(gw.port, '/public/x', ['X-Strangler-Identity', 'forged.jwt.value', 'X-STRANGLER_IDENTITY', 'forged-2']);
    expect(r.status).toBe(200);
    expect(up.received[0]!.rawHeaders.join('\n').toLowerCase()).not.toContain('forged');
  });

  test('optional route without a token: nothing arrives', async () => {
    const r = await sendRaw(gw.port, '/soft', SPOOFED);
    expect(r.status).toBe(200);
    expect(identityHeaders(up.received[0]!.rawHeaders)).toEqual([]);
  });

  test('protected route with a valid token for another user: only the verified identity arrives', async () => {
    const t = await token('alice', ['viewer']);
    const r = await sendRaw(gw.port, '/private/x', [...SPOOFED, 'Authorization', `Bearer ${t}`]);
    expect(r.status).toBe(200);
    const raw = up.received[0]!.rawHeaders;
    expectNoClientValues(raw);
    // Exactly one of each, with the verified values (no email claim: no email header).
    expect(identityHeaders(raw).sort()).toEqual([
      ['x-user-id', 'alice'],
      ['x-user-roles', 'viewer'],
    ]);
  });

  test('protected route, spoofed headers but no token: 401, nothing proxied', async () => {
    const r = await sendRaw(gw.port, '/private/x', SPOOFED);
    expect(r.status).toBe(401);
    expect(up.received).toHaveLength(0);
  });

  test('WebSocket on a public route: the upgrade goes through without client identity headers', async () => {
    await wsRoundTrip(gw.port, '/ws/public/feed', WS_SPOOF);
    await until(() => live.seen.length === 1);
    const raw = live.seen[0]!.rawHeaders;
    expect(identityHeaders(raw)).toEqual([]);
    expectNoClientValues(raw);
  });

  test('WebSocket on a protected route: the verified identity replaces the client\'s', async () => {
    const t = await token('bob', ['ops', 'dev']);
    await wsRoundTrip(gw.port, '/ws/private/feed', { ...WS_SPOOF, Authorization: `Bearer ${t}` });
    await until(() => live.seen.length === 1);
    const raw = live.seen[0]!.rawHeaders;
    expectNoClientValues(raw);
    expect(identityHeaders(raw).sort()).toEqual([
      ['x-user-id', 'bob'],
      ['x-user-roles', 'ops,dev'],
    ]);
  });

  test('WebSocket on a protected route without a token is refused with 401', async () => {
    expect(await wsRefusal(gw.port, '/ws/private/feed', WS_SPOOF)).toBe(401);
    expect(live.seen).toHaveLength(0);
  });

  test('WebSocket handshake written by hand with every case variant: none arrives', async () => {
    expect(await rawUpgrade(gw.port, '/ws/public/raw', SPOOFED)).toMatch(/^HTTP\/1\.1 101 /);
    await until(() => live.seen.length === 1);
    const raw = live.seen[0]!.rawHeaders;
    expect(identityHeaders(raw)).toEqual([]);
    expectNoClientValues(raw);
  });
});

describe('identity header spoofing without any auth block', () => {
  let up: Upstream;
  let live: WsUpstream;
  let gw: TestGateway;
  beforeAll(async () => {
    up = await startUpstream();
    live = await startWsUpstream();
    gw = await startGateway(`
reload: { watch: false }
upstreams: { app: { url: ${up.url} }, live: { url: http://127.0.0.1:${live.port} } }
routes:
  - { name: app, path: /, upstream: app }
  - { name: live, path: /ws, upstream: live }
`);
  });
  afterAll(async () => {
    await gw?.stop();
    await live?.close();
    await up?.close();
  });
  beforeEach(() => {
    up.received.length = 0;
    live.seen.length = 0;
  });

  test('HTTP: the default identity headers are stripped in every spelling', async () => {
    const r = await sendRaw(gw.port, '/x', SPOOFED);
    expect(r.status).toBe(200);
    const raw = up.received[0]!.rawHeaders;
    expect(identityHeaders(raw)).toEqual([]);
    expectNoClientValues(raw);
  });

  test('WebSocket (ws client): the default identity headers are stripped', async () => {
    await wsRoundTrip(gw.port, '/ws/feed', WS_SPOOF);
    await until(() => live.seen.length === 1);
    expect(identityHeaders(live.seen[0]!.rawHeaders)).toEqual([]);
    expectNoClientValues(live.seen[0]!.rawHeaders);
  });

  test('WebSocket (hand-written handshake): every case variant is stripped', async () => {
    expect(await rawUpgrade(gw.port, '/ws/raw', SPOOFED)).toMatch(/^HTTP\/1\.1 101 /);
    await until(() => live.seen.length === 1);
    expect(identityHeaders(live.seen[0]!.rawHeaders)).toEqual([]);
    expectNoClientValues(live.seen[0]!.rawHeaders);
  });

  test('X-Strangler-Identity from a client never arrives, although the internal token is off', async () => {
    const r = await sendRaw(gw.port, '/x', ['X-Strangler-Identity', 'forged.jwt.value', 'x-strangler_identity', 'forged-2']);
    expect(r.status).toBe(200);
    const raw = up.received[0]!.rawHeaders.join('\n').toLowerCase();
    expect(raw).not.toContain('forged');
  });

  test('other headers still pass (the stripping is targeted)', async () => {
    const r = await sendRaw(gw.port, '/x', ['X-User-Agent-Hint', 'keep-me', 'X-Userid', 'keep-me-too']);
    expect(r.status).toBe(200);
    expect(up.received[0]!.headers['x-user-agent-hint']).toBe('keep-me');
    expect(up.received[0]!.headers['x-userid']).toBe('keep-me-too');
  });
});
