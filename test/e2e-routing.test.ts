import { json, send, startGateway, startUpstream, type TestGateway, type Upstream } from './helpers/servers';

describe('routing through a real gateway', () => {
  let monolith: Upstream;
  let users: Upstream;
  let gw: TestGateway;

  beforeAll(async () => {
    monolith = await startUpstream();
    users = await startUpstream();
    // File order puts the short prefix first: the most specific path must still win.
    gw = await startGateway(`
server: { port: 0 }
upstreams:
  monolith: { url: ${monolith.url} }
  users: { url: ${users.url}, timeoutMs: 3000 }
routes:
  - name: legacy
    path: /
    upstream: monolith
  - name: users
    path: /api/users
    methods: [GET, POST]
    upstream: users
    stripPrefix: /api
  - name: admin
    path: /admin
    upstream: monolith
  - name: users-exact-export
    path: /api/users/export
    exact: true
    upstream: monolith
`);
  });
  afterAll(async () => {
    await gw.stop();
    await Promise.all([monolith.close(), users.close()]);
  });
  beforeEach(() => {
    monolith.received.length = 0;
    users.received.length = 0;
  });

  test('a prefix route gets its subtree with stripPrefix applied and the query kept', async () => {
    const r = await send(gw.port, '/api/users/7?x=1&y=%20z');
    expect(r.status).toBe(200);
    expect(users.received.map((q) => q.url)).toEqual(['/users/7?x=1&y=%20z']);
    expect(monolith.received).toHaveLength(0);
  });

  test('the prefix matches on a segment boundary only', async () => {
    await send(gw.port, '/api/users');
    await send(gw.port, '/api/usersX');
    expect(users.received.map((q) => q.url)).toEqual(['/users']);
    expect(monolith.received.map((q) => q.url)).toEqual(['/api/usersX']);
  });

  test('an exact route beats the longer prefix that also covers it', async () => {
    await send(gw.port, '/api/users/export');
    await send(gw.port, '/api/users/export/2');
    expect(monolith.received.map((q) => q.url)).toEqual(['/api/users/export']);
    expect(users.received.map((q) => q.url)).toEqual(['/users/export/2']);
  });

  test('methods narrow a route: other methods fall through to the next match', async () => {
    await send(gw.port, '/api/users/7', { method: 'DELETE' });
    await send(gw.port, '/api/users', { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } });
    expect(monolith.received.map((q) => `${q.method} ${q.url}`)).toEqual(['DELETE /api/users/7']);
    expect(users.received.map((q) => `${q.method} ${q.url} ${q.body}`)).toEqual(['POST /users {"a":1}']);
  });

  test.each([
    ['/api/users/../../admin', '/admin'],
    ['/api/users/%2e%2e/%2e%2e/admin', '/admin'],
    ['//api//users//7', '/users/7'],
    ['/api/users/./7', '/users/7'],
  ])('path %s is normalised before matching and forwarded as normalised', async (raw, seen) => {
    const r = await send(gw.port, raw);
    expect(r.status).toBe(200);
    const all = [...users.received, ...monolith.received].map((q) => q.url);
    expect(all).toEqual([seen]);
    if (seen === '/admin') expect(users.received).toHaveLength(0);
  });

  test.each(['/api/users/..%2f..%2fadmin', '/api/users/%2e%2e%5cadmin', '/..', '/api/users/..;/admin', '/a%00b', '/%zz'])(
    'unsafe path %s is refused with 400 and reaches no upstream',
    async (raw) => {
      const r = await send(gw.port, raw);
      expect(r.status).toBe(400);
      expect(json(r).error.code).toBe('BAD_PATH');
      expect(users.received.length + monolith.received.length).toBe(0);
    },
  );

  test('no route: 404 JSON with a stable code and the request id', async () => {
    const noRoot = await startGateway(`
upstreams: { users: { url: ${users.url} } }
routes: [ { name: users, path: /api/users, upstream: users } ]
`);
    try {
      const r = await send(noRoot.port, '/nowhere', { headers: { 'x-request-id': 'abc-123' } });
      expect(r.status).toBe(404);
      expect(r.headers['content-type']).toMatch(/application\/json/);
      expect(json(r)).toEqual({ error: { code: 'ROUTE_NOT_FOUND', message: expect.any(String), requestId: 'abc-123' } });
      expect(r.headers['x-request-id']).toBe('abc-123');
    } finally {
      await noRoot.stop();
    }
  });

  test('the health path is answered by the gateway itself, even under a catch-all route', async () => {
    const r = await send(gw.port, '/healthz');
    expect(r.status).toBe(200);
    expect(json(r)).toEqual({ status: 'ok' });
    expect(monolith.received).toHaveLength(0);
  });

  test('host narrows a route', async () => {
    const hosted = await startGateway(`
upstreams: { monolith: { url: ${monolith.url} }, users: { url: ${users.url} } }
routes:
  - { name: legacy, path: /, upstream: monolith }
  - { name: tenant, path: /, host: "*.tools.example", upstream: users }
`);
    try {
      await send(hosted.port, '/x', { headers: { host: 'acme.tools.example:8080' } });
      await send(hosted.port, '/y', { headers: { host: 'portal.example' } });
      expect(users.received.map((q) => q.url)).toEqual(['/x']);
      expect(monolith.received.map((q) => q.url)).toEqual(['/y']);
    } finally {
      await hosted.stop();
    }
  });
});

describe('strangler explain says what the gateway does', () => {
  let monolith: Upstream;
  let users: Upstream;
  let orders: Upstream;
  let gw: TestGateway;

  beforeAll(async () => {
    [monolith, users, orders] = await Promise.all([startUpstream(), startUpstream(), startUpstream()]);
    gw = await startGateway(`
upstreams:
  monolith: { url: ${monolith.url} }
  users: { url: ${users.url} }
  orders: { url: ${orders.url}/v2 }
routes:
  - { name: users, path: /api/users, upstream: users, stripPrefix: /api }
  - name: orders
    path: /api/orders
    upstream: monolith
    canary: { upstream: orders, percent: 0, stripPrefix: /api, allowOverride: true }
  - { name: legacy, path: /, upstream: monolith }
`);
  });
  afterAll(async () => {
    await gw.stop();
    await Promise.all([monolith.close(), users.close(), orders.close()]);
  });

  const cases: Array<[target: string, headers: Record<string, string>]> = [
    ['/api/users/7;jsessionid=abc?x=1', {}],
    ['/shop/cart;jsessionid=abc?y=2', {}],
    ['/api/orders/42;jsessionid=abc?x=1', { 'x-canary': 'never' }],
    ['/api/orders/42;jsessionid=abc?x=1', { 'x-canary': 'always' }],
    ['/api/orders', { 'x-canary': 'always' }],
    ['/api/users/%2e%2e/admin?z', {}],
    ['/api/users;v=1/7', {}],
  ];

  test.each(cases)('%s %j: the upstream and path explain names are the ones that receive it', async (target, headers) => {
    const { explain } = await import('../src/routing/explain');
    const said = explain(gw.gw.table.config, 'GET', target, headers);
    const expected = said.canary ? { upstream: said.canary.upstream, path: said.canary.upstreamPath } : { upstream: said.upstream!.name, path: said.upstreamPath! };
    for (const up of [monolith, users, orders]) up.received.length = 0;
    expect((await send(gw.port, target, { headers })).status).toBe(200);
    const byName: Record<string, Upstream> = { monolith, users, orders };
    const got = Object.entries(byName).flatMap(([name, up]) => up.received.map((r) => ({ upstream: name, path: r.url })));
    expect(got).toEqual([expected]);
  });
});
