/**
 * RS256/ES256 tokens verified with keys from a JWKS server on loopback: the
 * first fetch, key rotation (an unknown kid refetches once), a key server
 * that goes down after the keys are known, one that was never reachable
 * (503 AUTH_UNAVAILABLE, not 401), and algorithm pinning.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import { closedPort, json, send, startGateway, startUpstream, until, type TestGateway, type Upstream } from './helpers/servers';

const now = () => Math.floor(Date.now() / 1000);

interface SigningKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: KeyObject;
  jwk: JWK;
}

async function makeKey(kid: string, alg: 'RS256' | 'ES256' = 'RS256'): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey: privateKey as unknown as KeyObject, jwk };
}

function sign(key: SigningKey, claims: JWTPayload, exp = now() + 300, kid: string | undefined = key.kid): Promise<string> {
  return new SignJWT({ jti: randomUUID(), ...claims })
    .setProtectedHeader({ alg: key.alg, typ: 'JWT', ...(kid === undefined ? {} : { kid }) })
    .setIssuedAt()
    .setExpirationTime(exp)
    .sign(key.privateKey);
}

/** A key server that can be told to fail, rotate its keys or go away. */
class KeyServer {
  mode: 'ok' | '500' = 'ok';
  keys: JWK[] = [];
  hits = 0;
  private server: Server | undefined;
  port = 0;

  async start(port = 0): Promise<void> {
    this.server = createServer((req, res) => {
      this.hits++;
      if (this.mode === '500' || req.url !== '/.well-known/jwks.json') {
        res.writeHead(this.mode === '500' ? 500 : 404, { 'content-type': 'text/plain' });
        res.end('no');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: this.keys }));
    });
    await new Promise<void>((r) => this.server!.listen(port, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/.well-known/jwks.json`;
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    await new Promise<void>((r) => {
      s.close(() => r());
      s.closeAllConnections();
    });
  }
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

function table(jwksUrl: string, upUrl: string, jwt = ''): string {
  return `
auth:
  jwt:
    jwksUrl: ${jwksUrl}
    jwksMinRefetchMs: 0
${jwt}
reload: { watch: false }
upstreams: { app: { url: ${upUrl} } }
routes:
  - { name: opt, path: /opt, upstream: app, auth: optional }
  - { name: api, path: /, upstream: app, auth: required }
`;
}

describe('RS256 through a JWKS server', () => {
  let up: Upstream;
  let keys: KeyServer;
  let k1: SigningKey;
  let k2: SigningKey;
  let gw: TestGateway;
  beforeAll(async () => {
    up = await startUpstream();
    k1 = await makeKey('k1');
    k2 = await makeKey('k2');
    keys = new KeyServer();
    keys.keys = [k1.jwk];
    await keys.start();
    gw = await startGateway(table(keys.url, up.url));
  });
  afterAll(async () => {
    await gw?.stop();
    await keys?.stop();
    await up?.close();
  });
  beforeEach(() => (up.received.length = 0));

  // The tests in this block run in order: the key server's state carries over.

  test('a valid RS256 token is accepted; the identity goes upstream', async () => {
    const token = await sign(k1, { sub: 'rs-user', email: 'rs@example.test', roles: ['admin', 'ops'] });
    const r = await send(gw.port, '/orders', { headers: bearer(token) });
    expect(r.status).toBe(200);
    expect(up.received[0]!.headers).toMatchObject({ 'x-user-id': 'rs-user', 'x-user-email': 'rs@example.test', 'x-user-roles': 'admin,ops' });
    expect(keys.hits).toBeGreaterThanOrEqual(1);
  });

  test('an ES256 key from the same set works too (default algorithms RS256, ES256)', async () => {
    const ec = await makeKey('ec1', 'ES256');
    keys.keys = [k1.jwk, ec.jwk];
    const token = await sign(ec, { sub: 'ec-user' });
    const r = await send(gw.port, '/x', { headers: bearer(token) });
    expect(r.status).toBe(200);
    expect(up.received[0]!.headers['x-user-id']).toBe('ec-user');
    keys.keys = [k1.jwk];
  });

  test('a token signed with an unpublished key under a known kid is refused', async () => {
    const impostor = await makeKey('k1');
    const token = await sign(impostor, { sub: 'rs-user' });
    const r = await send(gw.port, '/x', { headers: bearer(token) });
    expect(r.status).toBe(401);
    expect(up.received).toHaveLength(0);
  });

  test('an unknown kid refetches the key set once; after rotation the new key is accepted', async () => {
    // A k1 token verified before the rotation (and so cached by its hash).
    const verifiedBefore = await sign(k1, { sub: 'cached-k1' });
    expect((await send(gw.port, '/x', { headers: bearer(verifiedBefore) })).status).toBe(200);
    up.received.length = 0;
    // Not published yet: one refetch, still unknown -> 401.
    const early = await sign(k2, { sub: 'rotated' });
    let before = keys.hits;
    const refused = await send(gw.port, '/x', { headers: bearer(early) });
    expect(refused.status).toBe(401);
    expect(keys.hits - before).toBe(1);

    // The issuer rotates: the key server now publishes k2 (and no longer k1).
    keys.keys = [k2.jwk];
    const token = await sign(k2, { sub: 'rotated', roles: 'a b' });
    before = keys.hits;
    const r = await send(gw.port, '/x', { headers: bearer(token) });
    expect(r.status).toBe(200);
    expect(keys.hits - before).toBe(1);
    expect(up.received[0]!.headers['x-user-id']).toBe('rotated');
    expect(up.received[0]!.headers['x-user-roles']).toBe('a,b');

    // Known kid now: no refetch.
    before = keys.hits;
    const again = await sign(k2, { sub: 'rotated-2' });
    expect((await send(gw.port, '/x', { headers: bearer(again) })).status).toBe(200);
    expect(keys.hits).toBe(before);

    // k1 is no longer published: a new k1 token is refused...
    const retired = await sign(k1, { sub: 'retired-k1' });
    expect((await send(gw.port, '/x', { headers: bearer(retired) })).status).toBe(401);
    // ...while the k1 token verified earlier is answered from the verified-token cache
    // (its signature is not checked again until it expires): observable proof of the cache.
    up.received.length = 0;
    expect((await send(gw.port, '/x', { headers: bearer(verifiedBefore) })).status).toBe(200);
    expect(up.received[0]!.headers['x-user-id']).toBe('cached-k1');
  });

  test('the key server failing after the first fetch: tokens signed with the known key still verify', async () => {
    keys.mode = '500';
    const t1 = await sign(k2, { sub: 'during-500' });
    expect((await send(gw.port, '/x', { headers: bearer(t1) })).status).toBe(200);
    // A refetch attempt (unknown kid) against the failing server must not drop the keys we have.
    const unknown = await sign(await makeKey('k9'), { sub: 'x' });
    const before = keys.hits;
    // Its key could not be fetched: the token cannot be judged, which is an outage, not bad credentials.
    const u = await send(gw.port, '/x', { headers: bearer(unknown) });
    expect(u.status).toBe(503);
    expect(json(u).error.code).toBe('AUTH_UNAVAILABLE');
    expect(keys.hits - before).toBe(1);
    const t2 = await sign(k2, { sub: 'after-failed-refetch' });
    const r = await send(gw.port, '/x', { headers: bearer(t2) });
    expect(r.status).toBe(200);
    expect(up.received.at(-1)!.headers['x-user-id']).toBe('after-failed-refetch');
  });

  test('the key server gone entirely: tokens signed with the known key still verify', async () => {
    await keys.stop();
    const t1 = await sign(k2, { sub: 'server-gone' });
    const r = await send(gw.port, '/x', { headers: bearer(t1) });
    expect(r.status).toBe(200);
    expect(up.received[0]!.headers['x-user-id']).toBe('server-gone');
    // Unknown kid while the server is down: it cannot be checked, so 503 AUTH_UNAVAILABLE, not 401.
    const unknown = await sign(await makeKey('k10'), { sub: 'x' });
    const u = await send(gw.port, '/x', { headers: bearer(unknown) });
    expect(u.status).toBe(503);
    expect(json(u).error.code).toBe('AUTH_UNAVAILABLE');
  });
});

describe('throttled refetch', () => {
  test('an unknown kid refetches at most once per jwksMinRefetchMs', async () => {
    const up = await startUpstream();
    const k1 = await makeKey('k1');
    const keys = new KeyServer();
    keys.keys = [k1.jwk];
    await keys.start();
    const gw = await startGateway(table(keys.url, up.url, '    jwksRefreshMs: 3600000').replace('jwksMinRefetchMs: 0', 'jwksMinRefetchMs: 60000'));
    try {
      // Let the start-up fetch land.
      expect((await send(gw.port, '/x', { headers: bearer(await sign(k1, { sub: 'u' })) })).status).toBe(200);
      await until(() => keys.hits >= 1);
      const before = keys.hits;
      const stranger = await makeKey('kX');
      for (let i = 0; i < 5; i++) expect((await send(gw.port, '/x', { headers: bearer(await sign(stranger, { sub: 'u' })) })).status).toBe(401);
      expect(keys.hits).toBe(before);
    } finally {
      await gw.stop();
      await keys.stop();
      await up.close();
    }
  });
});

describe('JWKS server unreachable from the start', () => {
  let up: Upstream;
  let gw: TestGateway;
  let k1: SigningKey;
  beforeAll(async () => {
    up = await startUpstream();
    k1 = await makeKey('k1');
    gw = await startGateway(table(`http://127.0.0.1:${await closedPort()}/jwks.json`, up.url));
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });
  beforeEach(() => (up.received.length = 0));

  test('a required route answers 503 AUTH_UNAVAILABLE, not 401', async () => {
    const token = await sign(k1, { sub: 'u' });
    const r = await send(gw.port, '/x', { headers: bearer(token) });
    expect(r.status).toBe(503);
    expect(r.headers['content-type']).toMatch(/application\/json/);
    expect(json(r).error.code).toBe('AUTH_UNAVAILABLE');
    expect(r.headers['www-authenticate']).toBeUndefined();
    expect(up.received).toHaveLength(0);
  });

  test('a browser on a required route is not sent to the login page when keys are unavailable', async () => {
    const token = await sign(k1, { sub: 'u' });
    const r = await send(gw.port, '/x', { headers: { ...bearer(token), accept: 'text/html' } });
    expect(r.status).toBe(503);
  });

  test('an optional route is still served, anonymously', async () => {
    const token = await sign(k1, { sub: 'u' });
    const r = await send(gw.port, '/opt', { headers: bearer(token) });
    expect(r.status).toBe(200);
    expect(up.received[0]!.headers['x-user-id']).toBeUndefined();
  });

  test('a key server that comes up later is fetched on the next request', async () => {
    const port = await closedPort();
    const late = new KeyServer();
    late.keys = [k1.jwk];
    const g = await startGateway(table(`http://127.0.0.1:${port}/.well-known/jwks.json`, up.url));
    try {
      const token = await sign(k1, { sub: 'late-keys' });
      expect((await send(g.port, '/x', { headers: bearer(token) })).status).toBe(503);
      await late.start(port);
      const r = await send(g.port, '/x', { headers: bearer(token) });
      expect(r.status).toBe(200);
      expect(up.received.at(-1)!.headers['x-user-id']).toBe('late-keys');
    } finally {
      await g.stop();
      await late.stop();
    }
  });

  test('no token at all is still 401 (nothing to check)', async () => {
    const r = await send(gw.port, '/x');
    expect(r.status).toBe(401);
  });
});

describe('algorithm pinning', () => {
  let up: Upstream;
  let keys: KeyServer;
  let k1: SigningKey;
  beforeAll(async () => {
    up = await startUpstream();
    k1 = await makeKey('k1');
    keys = new KeyServer();
    keys.keys = [k1.jwk];
    await keys.start();
  });
  afterAll(async () => {
    await keys?.stop();
    await up?.close();
  });

  test('HS256 signed with the public key (alg confusion) is refused by a JWKS-only gateway', async () => {
    const gw = await startGateway(table(keys.url, up.url));
    try {
      const pem = createPublicKey({ key: k1.jwk as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
      const token = await new SignJWT({ sub: 'root', roles: ['admin'] })
        .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
        .setExpirationTime(now() + 300)
        .sign(new TextEncoder().encode(pem as string));
      expect((await send(gw.port, '/x', { headers: bearer(token) })).status).toBe(401);
      // The real key works on the same gateway, so the refusal is about the algorithm.
      expect((await send(gw.port, '/x', { headers: bearer(await sign(k1, { sub: 'u' })) })).status).toBe(200);
    } finally {
      await gw.stop();
    }
  });

  test('an RS256 token is refused by a gateway that only has an HS256 secret', async () => {
    const gw = await startGateway(`
auth: { default: required, jwt: { secret: "${'s'.repeat(32)}" } }
reload: { watch: false }
upstreams: { app: { url: ${up.url} } }
routes: [ { name: api, path: /, upstream: app } ]
`);
    try {
      expect((await send(gw.port, '/x', { headers: bearer(await sign(k1, { sub: 'u' })) })).status).toBe(401);
    } finally {
      await gw.stop();
    }
  });

  test('algorithms: [ES256] refuses an RS256 token from the same key server', async () => {
    const gw = await startGateway(table(keys.url, up.url, '    algorithms: [ES256]'));
    try {
      expect((await send(gw.port, '/x', { headers: bearer(await sign(k1, { sub: 'u' })) })).status).toBe(401);
    } finally {
      await gw.stop();
    }
  });
});
