/**
 * Single login with HS256 JWTs at the gateway: verification, per-route
 * policy (none / optional / required / roles), the login redirect for
 * browsers, credential forwarding, the internal identity token, the
 * verified-token cache and that no secret ever reaches a log line.
 * Real gateway and upstreams on loopback; tokens are signed with jose.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createLocalJWKSet, decodeJwt, jwtVerify, SignJWT, type JSONWebKeySet, type JWTPayload } from 'jose';
import { json, send, startGateway, startUpstream, until, type Received, type TestGateway, type Upstream } from './helpers/servers';

const SECRET = `hs256-${randomBytes(16).toString('hex')}`;
const KEY = new TextEncoder().encode(SECRET);
const ISS = 'https://portal.example.test/';
const AUD = 'portal';
const now = () => Math.floor(Date.now() / 1000);

interface SignOptions {
  /** Epoch seconds; null: no exp claim at all. Default: in 5 minutes. */
  exp?: number | null;
  iss?: string;
  aud?: string;
  key?: Uint8Array;
}

/** A fresh HS256 token (a unique jti, so the verified-token cache never answers for another test). */
function hs256(claims: JWTPayload, o: SignOptions = {}): Promise<string> {
  let jwt = new SignJWT({ jti: randomUUID(), ...claims })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt()
    .setIssuer(o.iss ?? ISS)
    .setAudience(o.aud ?? AUD);
  if (o.exp !== null) jwt = jwt.setExpirationTime(o.exp ?? now() + 300);
  return jwt.sign(o.key ?? KEY);
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const last = (up: Upstream): Received => up.received[up.received.length - 1]!;
const IDENTITY = ['x-user-id', 'x-user-email', 'x-user-roles'];

function tableYaml(upUrl: string, extra = ''): string {
  return `
auth:
  loginUrl: /login
  jwt:
    secret: \${JWT_SECRET}
    issuer: ${ISS}
    audience: ${AUD}
    cookie: portal_session
${extra}
reload: { watch: false }
upstreams: { app: { url: ${upUrl} } }
routes:
  - { name: public, path: /public, upstream: app, auth: none }
  - { name: opt, path: /opt, upstream: app, auth: optional }
  - { name: admin, path: /admin, upstream: app, roles: [admin, root] }
  - { name: nocreds, path: /nocreds, upstream: app, auth: required, forwardCredentials: false }
  - { name: api, path: /api, upstream: app, auth: required }
  - { name: rest, path: /, upstream: app }
`;
}

describe('HS256 tokens (auth.jwt.secret from the environment)', () => {
  let up: Upstream;
  let gw: TestGateway;
  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(tableYaml(up.url), { JWT_SECRET: SECRET });
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });
  beforeEach(() => (up.received.length = 0));

  test('a valid token is accepted and the identity goes upstream (roles as an array)', async () => {
    const token = await hs256({ sub: 'user-42', email: 'ada@example.test', roles: ['editor', 'billing'] });
    const r = await send(gw.port, '/api/orders/1', { headers: bearer(token) });
    expect(r.status).toBe(200);
    expect(up.received).toHaveLength(1);
    const h = last(up).headers;
    expect(h['x-user-id']).toBe('user-42');
    expect(h['x-user-email']).toBe('ada@example.test');
    expect(h['x-user-roles']).toBe('editor,billing');
  });

  test('roles given as a space/comma-separated string are comma-joined', async () => {
    const token = await hs256({ sub: 'user-43', roles: 'editor  billing,ops , audit' });
    const r = await send(gw.port, '/api/x', { headers: bearer(token) });
    expect(r.status).toBe(200);
    expect(last(up).headers['x-user-roles']).toBe('editor,billing,ops,audit');
    // No email claim: no email header (and no empty one).
    expect(last(up).headers['x-user-email']).toBeUndefined();
  });

  test('a role holding a separator (["viewer,admin"]) makes the token invalid: 401, nothing proxied, the reason logged', async () => {
    for (const role of ['viewer,admin', 'viewer admin']) {
      const token = await hs256({ sub: 'user-44', roles: [role] });
      const r = await send(gw.port, '/admin', { headers: bearer(token) });
      expect(r.status).toBe(401);
    }
    expect(up.received).toHaveLength(0);
    expect(gw.logs.lines.some((l) => l.msg === 'authentication refused' && /contains a comma or white space/.test(String(l.detail)))).toBe(true);
  });

  test('the bearer scheme is case-insensitive', async () => {
    const token = await hs256({ sub: 'user-44' });
    const r = await send(gw.port, '/api/x', { headers: { authorization: `bearer ${token}` } });
    expect(r.status).toBe(200);
    expect(last(up).headers['x-user-id']).toBe('user-44');
  });

  test('claims a header cannot carry (non-Latin script, CR/LF) are percent-encoded, not a 502', async () => {
    const token = await hs256({ sub: 'u-\u00e9\r\nX-Injected: 1', email: '\u7528\u6237@\u4f8b\u5b50.test', roles: ['\u7ba1\u7406', 'ops%'] });
    const r = await send(gw.port, '/api/x', { headers: bearer(token) });
    expect(r.status).toBe(200);
    const h = last(up).headers;
    expect(h['x-injected']).toBeUndefined();
    expect(h['x-user-id']).toBe('u-%C3%A9%0D%0AX-Injected: 1');
    expect(decodeURIComponent(h['x-user-id'] as string)).toBe('u-\u00e9\r\nX-Injected: 1');
    expect(decodeURIComponent(h['x-user-email'] as string)).toBe('\u7528\u6237@\u4f8b\u5b50.test');
    expect(decodeURIComponent(h['x-user-roles'] as string)).toBe('\u7ba1\u7406,ops%');
    // Plain ASCII values, '%' included, are sent unchanged.
    const plain = await hs256({ sub: 'u%41', email: 'a+b@example.test' });
    expect((await send(gw.port, '/api/x', { headers: bearer(plain) })).status).toBe(200);
    expect(last(up).headers['x-user-id']).toBe('u%41');
    expect(last(up).headers['x-user-email']).toBe('a+b@example.test');
  });

  test('an expired token is refused with 401 invalid_token', async () => {
    const token = await hs256({ sub: 'user-1' }, { exp: now() - 120 });
    const r = await send(gw.port, '/api/x', { headers: bearer(token) });
    expect(r.status).toBe(401);
    expect(json(r).error.code).toBe('UNAUTHORIZED');
    expect(r.headers['www-authenticate']).toMatch(/^Bearer .*error="invalid_token"/);
    expect(up.received).toHaveLength(0);
  });

  test('a token just inside the clock tolerance is still accepted', async () => {
    const token = await hs256({ sub: 'user-skew' }, { exp: now() - 5 });
    const r = await send(gw.port, '/api/x', { headers: bearer(token) });
    expect(r.status).toBe(200);
  });

  test.each([
    ['issuer', { iss: 'https://evil.example.test/' }],
    ['audience', { aud: 'some-other-app' }],
  ])('a token for the wrong %s is refused', async (_what, o) => {
    const token = await hs256({ sub: 'user-1' }, o);
    const r = await send(gw.port, '/api/x', { headers: bearer(token) });
    expect(r.status).toBe(401);
    expect(json(r).error.code).toBe('UNAUTHORIZED');
    expect(up.received).toHaveLength(0);
  });

  test('a token signed with another secret is refused', async () => {
    const token = await hs256({ sub: 'user-1' }, { key: new TextEncoder().encode(`not-${SECRET}`) });
    const r = await send(gw.port, '/api/x', { headers: bearer(token) });
    expect(r.status).toBe(401);
    expect(up.received).toHaveLength(0);
  });

  test('a token whose payload was changed after signing is refused', async () => {
    const good = await hs256({ sub: 'user-1', roles: ['viewer'] });
    const [h, , s] = good.split('.') as [string, string, string];
    const claims = { ...decodeJwt(good), sub: 'user-1', roles: ['admin'] };
    const forged = `${h}.${b64url(claims)}.${s}`;
    const r = await send(gw.port, '/admin', { headers: bearer(forged) });
    expect(r.status).toBe(401);
    expect(up.received).toHaveLength(0);
  });

  test.each([
    ['alg none, empty signature', { alg: 'none', typ: 'JWT' }, ''],
    ['alg NONE', { alg: 'NONE' }, ''],
    ['alg none with a junk signature', { alg: 'none' }, 'AAAA'],
  ])('an unsigned token (%s) is refused', async (_what, header, sig) => {
    const payload = { sub: 'root', roles: ['admin'], iss: ISS, aud: AUD, iat: now(), exp: now() + 300 };
    const token = `${b64url(header)}.${b64url(payload)}.${sig}`;
    const r = await send(gw.port, '/api/x', { headers: bearer(token) });
    expect(r.status).toBe(401);
    expect(json(r).error.code).toBe('UNAUTHORIZED');
    expect(up.received).toHaveLength(0);
  });

  test('a token without exp is refused', async () => {
    const token = await hs256({ sub: 'user-1' }, { exp: null });
    expect(decodeJwt(token).exp).toBeUndefined();
    const r = await send(gw.port, '/api/x', { headers: bearer(token) });
    expect(r.status).toBe(401);
    expect(up.received).toHaveLength(0);
  });

  test('a token without the user id claim is refused', async () => {
    const token = await hs256({ email: 'nobody@example.test' });
    const r = await send(gw.port, '/api/x', { headers: bearer(token) });
    expect(r.status).toBe(401);
  });

  test.each([['garbage'], ['a.b.c'], ['eyJhbGciOiJIUzI1NiJ9..']])('a malformed token (%s) is 401, not 500', async (token) => {
    const r = await send(gw.port, '/api/x', { headers: bearer(token) });
    expect(r.status).toBe(401);
  });

  test('the token may come from the configured cookie, among other cookies', async () => {
    const token = await hs256({ sub: 'cookie-user', roles: ['viewer'] });
    const r = await send(gw.port, '/api/x', { headers: { cookie: `theme=dark; portal_session=${token}; lang=en` } });
    expect(r.status).toBe(200);
    expect(last(up).headers['x-user-id']).toBe('cookie-user');
    // Credentials are forwarded unchanged by default.
    expect(last(up).headers.cookie).toBe(`theme=dark; portal_session=${token}; lang=en`);
  });

  test('a session cookie value in double quotes (RFC 6265) is read without the quotes', async () => {
    const token = await hs256({ sub: 'quoted-user' });
    const r = await send(gw.port, '/api/x', { headers: { cookie: `portal_session="${token}"` } });
    expect(r.status).toBe(200);
    expect(last(up).headers['x-user-id']).toBe('quoted-user');
  });

  test('a cookie with another name is not a session', async () => {
    const token = await hs256({ sub: 'cookie-user' });
    const r = await send(gw.port, '/api/x', { headers: { cookie: `other_session=${token}` } });
    expect(r.status).toBe(401);
  });
});

describe('per-route policy', () => {
  let up: Upstream;
  let gw: TestGateway;
  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(tableYaml(up.url), { JWT_SECRET: SECRET });
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });
  beforeEach(() => (up.received.length = 0));

  test('roles: a user with none of the roles gets 403 FORBIDDEN', async () => {
    const token = await hs256({ sub: 'plain', roles: ['viewer', 'editor'] });
    const r = await send(gw.port, '/admin/users', { headers: bearer(token) });
    expect(r.status).toBe(403);
    expect(r.headers['content-type']).toMatch(/application\/json/);
    expect(json(r).error.code).toBe('FORBIDDEN');
    expect(json(r).error.requestId).toBe(r.headers['x-request-id']);
    expect(up.received).toHaveLength(0);
  });

  test('roles: any one of the listed roles is enough', async () => {
    for (const roles of [['admin'], ['viewer', 'root'], 'viewer root']) {
      const token = await hs256({ sub: 'boss', roles });
      const r = await send(gw.port, '/admin/users', { headers: bearer(token) });
      expect(r.status).toBe(200);
    }
    expect(up.received).toHaveLength(3);
  });

  test('roles: no token at all is 401, not 403 (roles imply required)', async () => {
    const r = await send(gw.port, '/admin');
    expect(r.status).toBe(401);
    expect(json(r).error.code).toBe('UNAUTHORIZED');
  });

  test('roles: a role name is not matched as a substring', async () => {
    const token = await hs256({ sub: 'sly', roles: ['administrator', 'admins'] });
    const r = await send(gw.port, '/admin', { headers: bearer(token) });
    expect(r.status).toBe(403);
  });

  test('optional: no token is proxied anonymously', async () => {
    const r = await send(gw.port, '/opt/page');
    expect(r.status).toBe(200);
    for (const name of IDENTITY) expect(last(up).headers[name]).toBeUndefined();
  });

  test('optional: an invalid or expired token is proxied anonymously', async () => {
    const expired = await hs256({ sub: 'late' }, { exp: now() - 600 });
    const wrongKey = await hs256({ sub: 'forger' }, { key: new TextEncoder().encode('x'.repeat(32)) });
    for (const token of [expired, wrongKey, 'not-a-jwt']) {
      const r = await send(gw.port, '/opt/page', { headers: bearer(token) });
      expect(r.status).toBe(200);
      for (const name of IDENTITY) expect(last(up).headers[name]).toBeUndefined();
    }
    expect(up.received).toHaveLength(3);
  });

  test('optional: a valid token adds the identity', async () => {
    const token = await hs256({ sub: 'opt-user', roles: ['a'] });
    const r = await send(gw.port, '/opt/page', { headers: bearer(token) });
    expect(r.status).toBe(200);
    expect(last(up).headers['x-user-id']).toBe('opt-user');
  });

  test('none (here: auth.default) does not authenticate: a valid token adds no identity', async () => {
    const token = await hs256({ sub: 'someone', roles: ['admin'] });
    const r = await send(gw.port, '/public/x', { headers: bearer(token) });
    const d = await send(gw.port, '/anything', { headers: bearer(token) });
    expect(r.status).toBe(200);
    expect(d.status).toBe(200);
    expect(up.received).toHaveLength(2);
    for (const rec of up.received) for (const name of IDENTITY) expect(rec.headers[name]).toBeUndefined();
  });

  test.each([
    ['no Accept', {}],
    ['Accept: application/json', { accept: 'application/json' }],
    ['Accept: */*', { accept: '*/*' }],
    ['JSON preferred over HTML', { accept: 'application/json, text/html;q=0.5' }],
  ])('required, no token, API client (%s): 401 JSON with a Bearer challenge', async (_what, headers) => {
    const r = await send(gw.port, '/api/orders?page=2', { headers });
    expect(r.status).toBe(401);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    expect(r.headers['www-authenticate']).toMatch(/^Bearer realm="strangler"/);
    expect(r.headers['www-authenticate']).not.toMatch(/invalid_token/);
    const body = json(r);
    expect(body.error.code).toBe('UNAUTHORIZED');
    expect(body.error.requestId).toBe(r.headers['x-request-id']);
    expect(r.headers.location).toBeUndefined();
    expect(up.received).toHaveLength(0);
  });

  test('required, no token, browser navigation: 302 to the login page with the original path and query', async () => {
    const accept = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
    const r = await send(gw.port, '/api/orders/7?tab=items&q=a%20b', { headers: { accept } });
    expect(r.status).toBe(302);
    expect(r.headers.location).toBe(`/login?next=${encodeURIComponent('/api/orders/7?tab=items&q=a%20b')}`);
    expect(r.headers.location).toBe('/login?next=%2Fapi%2Forders%2F7%3Ftab%3Ditems%26q%3Da%2520b');
    expect(r.headers['cache-control']).toBe('no-store');
    expect(up.received).toHaveLength(0);
  });

  test('a browser POST without a session is not redirected (401)', async () => {
    const r = await send(gw.port, '/api/orders', { method: 'POST', headers: { accept: 'text/html', 'content-type': 'text/plain' }, body: 'x' });
    expect(r.status).toBe(401);
  });

  test('a browser with an expired session is redirected too', async () => {
    const token = await hs256({ sub: 'late' }, { exp: now() - 600 });
    const r = await send(gw.port, '/api', { headers: { accept: 'text/html', cookie: `portal_session=${token}` } });
    expect(r.status).toBe(302);
    expect(r.headers.location).toBe('/login?next=%2Fapi');
  });

  test('forwardCredentials: false drops Authorization and Cookie but keeps the identity', async () => {
    const token = await hs256({ sub: 'nc-user' });
    const r = await send(gw.port, '/nocreds/x', { headers: { ...bearer(token), cookie: 'theme=dark; tracking=1' } });
    expect(r.status).toBe(200);
    const h = last(up).headers;
    expect(h.authorization).toBeUndefined();
    expect(h.cookie).toBeUndefined();
    expect(h['x-user-id']).toBe('nc-user');
    expect(last(up).rawHeaders.join('\n')).not.toContain(token);
    // The session cookie itself is dropped too.
    const c = await send(gw.port, '/nocreds/y', { headers: { cookie: `portal_session=${token}` } });
    expect(c.status).toBe(200);
    expect(last(up).headers.cookie).toBeUndefined();
  });

  test('by default Authorization and Cookie go upstream unchanged', async () => {
    const token = await hs256({ sub: 'fc-user' });
    const r = await send(gw.port, '/api/x', { headers: { authorization: `Bearer ${token}`, cookie: 'theme=dark; tracking=1' } });
    expect(r.status).toBe(200);
    expect(last(up).headers.authorization).toBe(`Bearer ${token}`);
    expect(last(up).headers.cookie).toBe('theme=dark; tracking=1');
    const p = await send(gw.port, '/public', { headers: { authorization: 'Basic dTpw', cookie: 'a=1' } });
    expect(p.status).toBe(200);
    expect(last(up).headers.authorization).toBe('Basic dTpw');
    expect(last(up).headers.cookie).toBe('a=1');
  });
});

describe('auth.default', () => {
  let up: Upstream;
  let gw: TestGateway;
  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(
      `
auth:
  default: required
  jwt: { secret: "\${JWT_SECRET}" }
reload: { watch: false }
upstreams: { app: { url: ${up.url} } }
routes:
  - { name: open, path: /open, upstream: app, auth: none }
  - { name: soft, path: /soft, upstream: app, auth: optional }
  - { name: rest, path: /, upstream: app }
`,
      { JWT_SECRET: SECRET },
    );
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });
  beforeEach(() => (up.received.length = 0));

  test('routes without `auth` follow the default (required)', async () => {
    expect((await send(gw.port, '/x')).status).toBe(401);
    const token = await hs256({ sub: 'd-user' });
    const r = await send(gw.port, '/x', { headers: bearer(token) });
    expect(r.status).toBe(200);
    expect(last(up).headers['x-user-id']).toBe('d-user');
  });

  test('a route can opt out (none) or soften (optional)', async () => {
    expect((await send(gw.port, '/open')).status).toBe(200);
    expect((await send(gw.port, '/soft')).status).toBe(200);
    expect(up.received).toHaveLength(2);
  });

  test('the health path needs no token', async () => {
    expect((await send(gw.port, '/healthz')).status).toBe(200);
  });
});

describe('internal identity token', () => {
  let up: Upstream;
  let gw: TestGateway;
  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(
      `
auth:
  default: optional
  jwt: { secret: "\${JWT_SECRET}" }
  internalToken: { enabled: true }
reload: { watch: false }
upstreams: { app: { url: ${up.url} } }
routes:
  - { name: rest, path: /, upstream: app }
`,
      { JWT_SECRET: SECRET },
    );
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });
  beforeEach(() => (up.received.length = 0));

  async function gatewayJwks(): Promise<JSONWebKeySet> {
    const r = await send(gw.port, '/.well-known/strangler/jwks.json');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/application\/json/);
    return json(r) as JSONWebKeySet;
  }

  test('the JWKS is served by the gateway even with a catch-all route', async () => {
    const jwks = await gatewayJwks();
    expect(up.received).toHaveLength(0);
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256' });
    expect(typeof jwks.keys[0]!.kid).toBe('string');
    // The public half only.
    expect((jwks.keys[0] as { d?: string }).d).toBeUndefined();
  });

  test('the upstream gets X-Strangler-Identity, a short-lived JWT it can verify with the JWKS', async () => {
    const token = await hs256({ sub: 'it-user', email: 'it@example.test', roles: 'ops admin' });
    const r = await send(gw.port, '/svc/x', { headers: bearer(token) });
    expect(r.status).toBe(200);
    const internal = last(up).headers['x-strangler-identity'];
    expect(typeof internal).toBe('string');
    expect(internal).not.toBe(token);
    const { payload, protectedHeader } = await jwtVerify(internal as string, createLocalJWKSet(await gatewayJwks()), { issuer: 'strangler', algorithms: ['ES256'] });
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload).toMatchObject({ sub: 'it-user', email: 'it@example.test', roles: ['ops', 'admin'], iss: 'strangler' });
    const t = now();
    expect(payload.exp).toBeGreaterThan(t);
    expect(payload.exp!).toBeLessThanOrEqual(t + 61);
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(60);
  });

  test('the internal token carries claims exactly, even those the plain headers must encode', async () => {
    const email = '\u00e9l\u00e8ve@\u4f8b\u5b50.test';
    const token = await hs256({ sub: 'intl', email, roles: ['\u7ba1\u7406'] });
    expect((await send(gw.port, '/svc/i', { headers: bearer(token) })).status).toBe(200);
    const { payload } = await jwtVerify(last(up).headers['x-strangler-identity'] as string, createLocalJWKSet(await gatewayJwks()), { issuer: 'strangler' });
    expect(payload.email).toBe(email);
    expect(payload.roles).toEqual(['\u7ba1\u7406']);
  });

  test('a token signed by anyone else does not verify against the gateway JWKS', async () => {
    const token = await hs256({ sub: 'x' });
    await expect(jwtVerify(token, createLocalJWKSet(await gatewayJwks()))).rejects.toThrow();
  });

  test('a client-sent X-Strangler-Identity never reaches the upstream', async () => {
    const forged = `${b64url({ alg: 'none' })}.${b64url({ sub: 'root', iss: 'strangler' })}.`;
    const anon = await send(gw.port, '/svc/y', { headers: { 'x-strangler-identity': forged } });
    expect(anon.status).toBe(200);
    expect(last(up).headers['x-strangler-identity']).toBeUndefined();
    const token = await hs256({ sub: 'real' });
    const authed = await send(gw.port, '/svc/z', { headers: { ...bearer(token), 'X-Strangler-Identity': forged } });
    expect(authed.status).toBe(200);
    expect(last(up).headers['x-strangler-identity']).not.toBe(forged);
    expect(last(up).rawHeaders.join('\n')).not.toContain(forged);
    expect(decodeJwt(last(up).headers['x-strangler-identity'] as string).sub).toBe('real');
  });
});

describe('the verified-token cache', () => {
  let up: Upstream;
  let gw: TestGateway;
  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(tableYaml(up.url), { JWT_SECRET: SECRET });
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  test('the same valid token twice is accepted both times with the same identity', async () => {
    const token = await hs256({ sub: 'twice', roles: ['admin'] });
    const a = await send(gw.port, '/admin', { headers: bearer(token) });
    const b = await send(gw.port, '/admin', { headers: bearer(token) });
    const c = await send(gw.port, '/api', { headers: { cookie: `portal_session=${token}` } });
    expect([a.status, b.status, c.status]).toEqual([200, 200, 200]);
    expect(up.received.map((x) => x.headers['x-user-id'])).toEqual(['twice', 'twice', 'twice']);
    expect(up.received.map((x) => x.headers['x-user-roles'])).toEqual(['admin', 'admin', 'admin']);
  });

  test('a cached token is still refused once it expires', async () => {
    // exp one second ahead, tolerance 30 s: check that a cached entry does not outlive exp + tolerance
    // would take 30 s, so use a gateway-side tolerance of 0 on a separate table.
    const g = await startGateway(
      `
auth: { default: required, jwt: { secret: "\${JWT_SECRET}", clockToleranceSec: 0 } }
reload: { watch: false }
upstreams: { app: { url: ${up.url} } }
routes: [ { name: rest, path: /, upstream: app } ]
`,
      { JWT_SECRET: SECRET },
    );
    try {
      const exp = now() + 2;
      const token = await hs256({ sub: 'short' }, { exp });
      expect((await send(g.port, '/x', { headers: bearer(token) })).status).toBe(200);
      // Wait (bounded) until the token has expired by the gateway's clock.
      await until(() => Date.now() >= exp * 1000 + 50, 4000, 50);
      const r = await send(g.port, '/x', { headers: bearer(token) });
      expect(r.status).toBe(401);
    } finally {
      await g.stop();
    }
  });
});

describe('no secrets in logs or in the admin API', () => {
  test('tokens, cookies and the JWT secret never reach the logs; admin /routes shows the secret as ***', async () => {
    const up = await startUpstream();
    const gw = await startGateway(tableYaml(up.url, 'admin: { port: 0 }\nlog: { level: trace }'), { JWT_SECRET: SECRET });
    const secrets: string[] = [SECRET];
    try {
      const valid = await hs256({ sub: 'log-user', email: 'log@example.test', roles: ['admin'] });
      const expired = await hs256({ sub: 'log-user' }, { exp: now() - 600 });
      const forged = await hs256({ sub: 'log-user' }, { key: new TextEncoder().encode('y'.repeat(40)) });
      const unsigned = `${b64url({ alg: 'none' })}.${b64url({ sub: 'root', exp: now() + 60 })}.`;
      const opaqueCookie = `sess-${randomBytes(12).toString('hex')}`;
      secrets.push(valid, expired, forged, unsigned, opaqueCookie);
      const ids: string[] = [];
      const go = async (path: string, headers: Record<string, string>, method = 'GET') => {
        const id = `leak-${ids.length}`;
        ids.push(id);
        return send(gw.port, path, { method, headers: { ...headers, 'x-request-id': id } });
      };
      const statuses = [
        (await go('/api/a', bearer(valid))).status,
        (await go('/api/a', bearer(valid))).status, // cached
        (await go('/api/b', bearer(expired))).status,
        (await go('/api/c', bearer(forged))).status,
        (await go('/api/d', bearer(unsigned))).status,
        (await go('/api/e', { cookie: `portal_session=${valid}; other=${opaqueCookie}` })).status,
        (await go('/api/f', { cookie: `portal_session=${forged}` })).status,
        (await go('/api/g', { cookie: `portal_session=${expired}`, accept: 'text/html' })).status,
        (await go('/admin', bearer(expired))).status,
        (await go('/opt/h', bearer(forged))).status,
        (await go(`/public/i?access_token=${valid}`, { cookie: `sid=${opaqueCookie}` })).status,
        (await go(`/api/j?token=${forged}`, {})).status,
      ];
      expect(statuses).toEqual([200, 200, 401, 401, 401, 200, 401, 302, 401, 200, 200, 401]);

      const admin = await send(gw.gw.adminPort!, '/routes');
      expect(admin.status).toBe(200);
      expect(json(admin).auth.jwt.secret).toBe('***');
      expect(admin.body).not.toContain(SECRET);

      // Every request's access line has been written (and some refusal lines too).
      await until(() => ids.every((id) => gw.logs.lines.some((l) => l.reqId === id && l.msg === 'request')));
      expect(gw.logs.lines.some((l) => l.msg === 'authentication refused')).toBe(true);
      await gw.stop();
      const text = gw.logs.text();
      expect(text.length).toBeGreaterThan(0);
      for (const s of secrets) expect(text).not.toContain(s);
      // Not even a signature or payload segment of a token.
      for (const t of [valid, expired, forged]) for (const part of t.split('.').slice(1)) expect(text).not.toContain(part);
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});
