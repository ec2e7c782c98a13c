import type { IncomingMessage, ServerResponse } from 'node:http';
import { closedPort, json, send, startGateway, startUpstream, type TestGateway, type Upstream } from './helpers/servers';

function named(name: string, status = () => 200) {
  return startUpstream((req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(status(), { 'x-served-by': name });
    res.end(`${name} ${req.url}`);
  });
}

describe('canary routes through a real gateway', () => {
  let monolith: Upstream;
  let orders: Upstream;
  let ordersStatus = 200;
  let gw: TestGateway;

  beforeAll(async () => {
    monolith = await named('monolith');
    orders = await named('orders', () => ordersStatus);
    gw = await startGateway(`
admin: { port: 0 }
upstreams:
  monolith: { url: ${monolith.url} }
  orders: { url: ${orders.url}, breaker: { enabled: false } }
routes:
  - name: orders
    path: /api/orders
    upstream: monolith
    canary:
      upstream: orders
      percent: 50
      sticky: cookie
      stripPrefix: /api
      allowOverride: true
      rollback: { maxErrorPercent: 5, minRequests: 20, windowMs: 60000 }
  - name: tenants
    path: /api/tenants
    upstream: monolith
    canary: { upstream: orders, percent: 100, sticky: "header:X-Tenant" }
  - { name: legacy, path: /, upstream: monolith }
`);
  });
  afterAll(async () => {
    await gw.stop();
    await Promise.all([monolith.close(), orders.close()]);
  });

  test('a new user gets a sticky cookie once, and keeps their side with it', async () => {
    const first = await send(gw.port, '/api/orders/1');
    const setCookie = first.headers['set-cookie']?.[0];
    expect(setCookie).toMatch(/^strangler_sticky=[^;]+; Path=\/; Max-Age=31536000; HttpOnly; SameSite=Lax$/);
    const cookie = setCookie!.split(';')[0]!;
    const side = first.headers['x-served-by'];
    for (let i = 0; i < 20; i++) {
      const r = await send(gw.port, '/api/orders/1', { headers: { cookie } });
      expect(r.headers['set-cookie']).toBeUndefined();
      expect(r.headers['x-served-by']).toBe(side);
    }
  });

  test('the canary side gets its own path rewrite; the primary sees the original path', async () => {
    const a = await send(gw.port, '/api/orders/9', { headers: { 'x-canary': 'always' } });
    const b = await send(gw.port, '/api/orders/9', { headers: { 'x-canary': 'never' } });
    expect(a.body).toBe('orders /orders/9');
    expect(b.body).toBe('monolith /api/orders/9');
  });

  test('override headers are ignored where the route does not allow them', async () => {
    const r = await send(gw.port, '/api/tenants', { headers: { 'x-canary': 'never', 'x-tenant': 'acme' } });
    expect(r.headers['x-served-by']).toBe('orders');
  });

  test('a failing canary is rolled back after minRequests; everyone goes to the primary until reset', async () => {
    ordersStatus = 500;
    for (let i = 0; i < 25; i++) await send(gw.port, '/api/orders/x', { headers: { 'x-canary': 'always' } });
    const view = json(await send(gw.gw.adminPort!, '/canaries')).canaries.find((c: { route: string }) => c.route === 'orders');
    expect(view.rolledBack.requests).toBeGreaterThanOrEqual(20);
    expect(view.rolledBack.errorPercent).toBeGreaterThan(5);
    expect(view.effectivePercent).toBe(0);
    expect(view.health.canary.failures).toBeGreaterThanOrEqual(20);
    for (let i = 0; i < 10; i++) expect((await send(gw.port, '/api/orders/y', { headers: { cookie: `strangler_sticky=user-${i}` } })).headers['x-served-by']).toBe('monolith');
    const metrics = (await send(gw.gw.adminPort!, '/metrics')).body;
    expect(metrics).toContain('strangler_canary_rolled_back{route="orders"} 1');
    expect(metrics).toMatch(/strangler_canary_requests_total\{route="orders",side="canary"\} \d+/);
    expect(metrics).toContain('strangler_canary_percent{route="orders"} 0');
    // Reset by an operator.
    ordersStatus = 200;
    const reset = await send(gw.gw.adminPort!, '/canaries/orders/reset', { method: 'POST' });
    expect(reset.status).toBe(200);
    expect(json(reset).canary.rolledBack).toBeNull();
    const sides = new Set<string>();
    for (let i = 0; i < 40; i++) sides.add((await send(gw.port, '/api/orders/z', { headers: { cookie: `strangler_sticky=user-${i}` } })).headers['x-served-by'] as string);
    expect(sides).toEqual(new Set(['monolith', 'orders']));
    expect((await send(gw.gw.adminPort!, '/canaries/legacy/reset', { method: 'POST' })).status).toBe(404);
  });

  test('a canary that cannot be reached never takes the primary down: its users are served by the primary', async () => {
    const dead = await closedPort();
    const g = await startGateway(`
upstreams:
  monolith: { url: ${monolith.url} }
  orders: { url: http://127.0.0.1:${dead} }
routes:
  - { name: orders, path: /api/orders, upstream: monolith, canary: { upstream: orders, percent: 100, sticky: cookie } }
`);
    try {
      const r = await send(g.port, '/api/orders', { method: 'POST', body: '{"q":1}', headers: { 'content-type': 'application/json', cookie: 'strangler_sticky=a' } });
      expect(r.status).toBe(200);
      expect(r.headers['x-served-by']).toBe('monolith');
      expect(r.headers['x-strangler-fallback']).toBe('monolith');
    } finally {
      await g.stop();
    }
  });
});
