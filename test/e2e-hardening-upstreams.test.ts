/**
 * Broken upstreams: whatever an upstream answers, the client gets an answer
 * (or a closed connection) within the route's deadline, every in-flight count
 * returns to 0, and nothing the upstream should not expose reaches the client.
 * The upstreams here are raw TCP servers that write exactly the bytes given.
 */
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { json, send, startGateway, until, type TestGateway } from './helpers/servers';

/** A TCP server that answers every request (after its head) with `answer`, then leaves the connection open. */
async function rawUpstream(answer: (request: string) => string): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const sockets = new Set<import('node:net').Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    let got = '';
    sock.on('data', (c) => {
      got += c.toString('latin1');
      if (got.includes('\r\n\r\n')) {
        sock.write(Buffer.from(answer(got), 'latin1'));
        got = '';
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Sends bytes on a fresh connection; resolves with what came back when the gateway closed it (or after waitMs). */
function exchange(port: number, bytes: string, waitMs = 3000): Promise<{ reply: string; ms: number; closed: boolean }> {
  return new Promise((resolve) => {
    const started = performance.now();
    let reply = '';
    const sock = connect(port, '127.0.0.1', () => sock.write(bytes));
    sock.on('data', (c) => (reply += c.toString('latin1')));
    sock.on('error', () => undefined);
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ reply, ms: performance.now() - started, closed: false });
    }, waitMs);
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ reply, ms: performance.now() - started, closed: true });
    });
  });
}

async function gatewayFor(url: string): Promise<TestGateway> {
  return startGateway(`
admin: { port: 0 }
upstreams: { app: { url: ${url}, timeoutMs: 1500, retryBudget: { burst: 0, percent: 0 } } }
routes: [ { name: all, path: /, upstream: app } ]
`);
}

async function countsReturnToZero(gw: TestGateway): Promise<void> {
  await until(() => gw.gw.inFlightRequests === 0 && gw.gw.table.upstreams.get('app')!.inFlight === 0, 3000);
  const up = json(await send(gw.gw.adminPort!, '/upstreams')).upstreams[0];
  expect(up.inFlight).toBe(0);
  expect(up.instances[0].inFlight).toBe(0);
}

describe('an upstream that answers a plain request with 101 Switching Protocols', () => {
  test('the client gets a 502 at once, not a hang; counts return to 0', async () => {
    const up = await rawUpstream(() => 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n');
    const gw = await gatewayFor(up.url);
    try {
      const { reply, ms } = await exchange(gw.port, 'GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
      expect(reply).toMatch(/^HTTP\/1\.1 502/);
      expect(reply).toContain('"code":"UPSTREAM_ERROR"');
      expect(ms).toBeLessThan(1500);
      await countsReturnToZero(gw);
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});

describe('an upstream status line or header Node will not write', () => {
  test.each([
    ['a control byte in the reason phrase', 'HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok'],
  ])('%s: 502 within the deadline, never a hang; counts return to 0', async (_label, answer) => {
    const up = await rawUpstream(() => answer);
    const gw = await gatewayFor(up.url);
    try {
      const { reply, ms } = await exchange(gw.port, 'GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
      expect(reply).toMatch(/^HTTP\/1\.1 502/);
      expect(ms).toBeLessThan(1500);
      await countsReturnToZero(gw);
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});

describe('WebSocket upgrades answered without 101', () => {
  const UPGRADE = 'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';

  test('a 404 is relayed like a response: filtered head, correct framing, the request id', async () => {
    const up = await rawUpstream(
      () =>
        'HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, X-Internal\r\nX-Internal: secret\r\nKeep-Alive: timeout=5\r\n\r\n8\r\nnot here\r\n0\r\n\r\n',
    );
    const gw = await gatewayFor(up.url);
    try {
      const { reply, closed } = await exchange(gw.port, UPGRADE);
      expect(closed).toBe(true);
      const [head, body] = reply.split('\r\n\r\n', 2) as [string, string];
      expect(head).toMatch(/^HTTP\/1\.1 404 Not Found\r\n/);
      expect(head.toLowerCase()).not.toContain('x-internal');
      expect(head.toLowerCase()).not.toContain('transfer-encoding');
      expect(head.toLowerCase()).not.toContain('keep-alive');
      expect(head).toMatch(/\r\nX-Request-Id: [0-9a-f-]{36}/);
      expect(head.toLowerCase()).toContain('connection: close');
      expect(body).toBe('not here');
    } finally {
      await gw.stop();
      await up.close();
    }
  });

  test('the 101 head relayed to the client carries X-Request-Id', async () => {
    const up = await rawUpstream(() => 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n');
    const gw = await gatewayFor(up.url);
    try {
      const { reply } = await exchange(gw.port, UPGRADE.replace('\r\n\r\n', '\r\nX-Request-Id: ws-trace-1\r\n\r\n'), 500);
      expect(reply).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
      expect(reply.toLowerCase()).toContain('x-request-id: ws-trace-1');
    } finally {
      await gw.stop();
      await up.close();
    }
  });

  test('a refused upgrade whose body is cut short closes the client\'s connection', async () => {
    const up = await rawUpstream(() => 'HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    // The raw upstream leaves its connection open after answering: close it after the first chunk.
    up.server.on('connection', (sock) => sock.on('data', () => setTimeout(() => sock.destroy(), 100)));
    const gw = await gatewayFor(up.url);
    try {
      const { reply, closed, ms } = await exchange(gw.port, UPGRADE, 3000);
      expect(reply).toMatch(/^HTTP\/1\.1 503 /);
      expect(reply).toContain('hello');
      expect(closed).toBe(true);
      expect(ms).toBeLessThan(2000);
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});
