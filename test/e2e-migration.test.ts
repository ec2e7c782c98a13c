/**
 * The migration report through a real gateway: requests answered by the
 * monolith, by a canary and by a fallback are counted on the side that
 * answered; the legacy inventory lists templates; the console's table editing
 * saves the file atomically, keeps secrets and refuses stale edits.
 */
import { existsSync, readdirSync, readFileSync, statSync, chmodSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { closedPort, json, send, startGateway, startUpstream, until, type TestGateway, type Upstream } from './helpers/servers';

const TOKEN = 'console-test-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };

describe('migration report', () => {
  let monolith: Upstream;
  let orders: Upstream;
  let gw: TestGateway;
  beforeAll(async () => {
    monolith = await startUpstream();
    orders = await startUpstream();
    const down = await closedPort();
    gw = await startGateway(`
admin: { port: 0, token: ${TOKEN} }
reload: { watch: false }
upstreams:
  monolith: { url: ${monolith.url} }
  orders-svc: { url: ${orders.url} }
  users-svc: { url: http://127.0.0.1:${down} }
migration:
  templates: ['/reports/{name}/pdf']
routes:
  - { name: monolith, path: /, upstream: monolith }
  - { name: orders, path: /api/orders, upstream: monolith, canary: { upstream: orders-svc, percent: 100 } }
  - { name: users, path: /api/users, upstream: users-svc, fallback: monolith }
`);
  });
  afterAll(async () => {
    await gw.stop();
    await Promise.all([monolith.close(), orders.close()]);
  });

  test('requests are counted on the side that answered: the monolith, the canary, a fallback to the monolith', async () => {
    for (let i = 0; i < 6; i++) expect((await send(gw.port, `/orders/${1000 + i}/items/${i}`)).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await send(gw.port, `/reports/q${i}/pdf`)).status).toBe(200);
    for (let i = 0; i < 4; i++) expect((await send(gw.port, `/api/orders/${i}`)).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await send(gw.port, `/api/users/${i}`)).status).toBe(200);
    // Refused by the gateway itself (no route match is impossible here; a bad path is): not counted.
    expect((await send(gw.port, '/%2e%2e/x')).status).toBe(400);
    await until(() => monolith.received.length === 11 && orders.received.length === 4);
    const m = json(await send(gw.gw.adminPort!, '/migration', { headers: auth }));
    expect(m.legacyUpstreams).toEqual(['monolith']);
    expect(m.now).toMatchObject({ legacy: 11, new: 4, errors: 0, legacyPercent: 73.33 });
    expect(m.last24h).toMatchObject({ legacy: 11, new: 4 });
    expect(m.hourly).toHaveLength(24);
    expect(m.hourly[23]).toMatchObject({ legacy: 11, new: 4 });
    const byRoute = Object.fromEntries(m.routes.map((r: { route: string }) => [r.route, r]));
    expect(byRoute.orders).toMatchObject({ path: '/api/orders', upstream: 'monolith', side: 'legacy', canary: { upstream: 'orders-svc', side: 'new', percent: 100, rolledBack: false }, now: { legacy: 0, new: 4 } });
    expect(byRoute.users).toMatchObject({ side: 'new', now: { legacy: 2, new: 0 }, breakers: [{ upstream: 'users-svc' }, { upstream: 'monolith', state: 'closed' }] });
    expect(byRoute.monolith.now).toMatchObject({ legacy: 9, new: 0 });
    expect(byRoute.monolith.p95Ms).toBeGreaterThan(0);

    const inv = json(await send(gw.gw.adminPort!, '/migration/inventory', { headers: auth }));
    // GET /migration carries the same inventory, unless asked not to.
    expect(m.inventory).toEqual(inv);
    expect(json(await send(gw.gw.adminPort!, '/migration?inventory=none', { headers: auth })).inventory).toBeUndefined();
    expect(inv.templates.map((t: { method: string; template: string; count: number; route: string }) => `${t.method} ${t.template} ${t.count} ${t.route}`)).toEqual([
      'GET /orders/{int}/items/{int} 6 monolith',
      'GET /reports/{name}/pdf 3 monolith',
      'GET /api/users/{int} 2 users',
    ]);
    expect(inv).toMatchObject({ total: 11, other: 0, tracked: 3 });

    const csv = await send(gw.gw.adminPort!, '/migration/inventory.csv', { headers: auth });
    expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
    const lines = csv.body.trim().split('\r\n');
    expect(lines[0]).toBe('method,template,route,count,max_overcount,share_percent,last_seen,1xx,2xx,3xx,4xx,5xx,p95_ms');
    expect(lines[1]).toMatch(/^GET,\/orders\/\{int\}\/items\/\{int\},monolith,6,0,54\.55,\d{4}-\d\d-\d\dT[^,]+,0,6,0,0,0,[\d.]+$/);

    const metrics = (await send(gw.gw.adminPort!, '/metrics', { headers: auth })).body;
    expect(metrics).toContain('strangler_requests_by_side_total{side="legacy"} 11');
    expect(metrics).toContain('strangler_requests_by_side_total{side="new"} 4');
    expect(metrics).toContain('strangler_legacy_requests_total{method="GET",template="/orders/{int}/items/{int}"} 6');
  });

  test('the migration endpoints need the admin token', async () => {
    for (const path of ['/migration', '/migration/inventory', '/migration/inventory.csv', '/reloads', '/table']) expect((await send(gw.gw.adminPort!, path)).status).toBe(401);
  });
});

describe('migration counting off', () => {
  test('migration.count: false answers 404 NOT_COUNTING and counts nothing', async () => {
    const up = await startUpstream();
    const gw = await startGateway(`
admin: { port: 0 }
upstreams: { app: { url: ${up.url} } }
migration: { count: false }
routes: [{ name: app, path: /, upstream: app }]
`);
    try {
      await send(gw.port, '/x');
      expect(gw.gw.migration).toBeUndefined();
      const r = await send(gw.gw.adminPort!, '/migration');
      expect(r.status).toBe(404);
      expect(json(r).error.code).toBe('NOT_COUNTING');
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});

describe('editing the route table over the admin API', () => {
  let up: Upstream;
  let next: Upstream;
  beforeAll(async () => {
    up = await startUpstream();
    next = await startUpstream();
  });
  afterAll(async () => Promise.all([up.close(), next.close()]));

  const table = (extra = '') => `# the route table
admin: { port: 0, token: ${TOKEN}, allowEdit: true, historySize: 2 }
reload: { watch: false }
auth:
  jwt: { secret: "a-literal-secret-of-at-least-32-bytes", issuer: portal }
upstreams:
  monolith: { url: ${up.url} }
  orders: { url: ${next.url} }
routes:
  - { name: all, path: /, upstream: monolith }
${extra}`;

  /**
   * A secret in the table (`line`, inserted before upstreams) is masked as `masked` in GET /table and
   * never shown by /routes (which shows `routesShows` instead, when given), and a PUT of the masked text
   * keeps it in the file; no log line carries it.
   */
  async function secretRoundTrip(line: string, secret: string, masked: string, routesShows: string | undefined): Promise<void> {
    const gw = await startGateway(table().replace('upstreams:\n', `${line}\nupstreams:\n`));
    try {
      const t = json(await send(gw.gw.adminPort!, '/table', { headers: auth }));
      expect(t.text).not.toContain(secret);
      expect(t.text).toContain(masked);
      const routes = (await send(gw.gw.adminPort!, '/routes', { headers: auth })).body;
      expect(routes).not.toContain(secret);
      if (routesShows !== undefined) expect(routes).toContain(routesShows);
      const put = await send(gw.gw.adminPort!, '/table', { method: 'PUT', headers: { ...auth, 'content-type': 'application/yaml', 'if-match': t.version }, body: `${t.text}  - { name: more, path: /more, upstream: orders }\n` });
      expect(put.status).toBe(200);
      expect(readFileSync(gw.configPath, 'utf8')).toContain(line);
      expect(gw.logs.lines.map((l) => JSON.stringify(l)).join('\n')).not.toContain(secret);
    } finally {
      await gw.stop();
    }
  }

  test('a password in a URL (state.redis.url) is a secret too: masked in GET /table and /routes, kept by PUT', async () => {
    // (Nothing listens there: the gateway serves with local decisions meanwhile.)
    await secretRoundTrip('state: { redis: { url: "redis://:hunter2-pw@127.0.0.1:9" } }', 'hunter2', 'state: { redis: { url: "***" } }', 'redis://:***@127.0.0.1:9');
  });

  test('the trace collector\'s headers (tracing.otlp.headers) are secrets whatever their name: masked in GET /table and /routes, kept by PUT', async () => {
    await secretRoundTrip('tracing: { otlp: { endpoint: "http://127.0.0.1:9", headers: { x-honeycomb-team: "hc-key-9f8e7d" } } }', 'hc-key-9f8e7d', 'x-honeycomb-team: "***"', undefined);
  });

  test('GET /table masks literal secrets; PUT keeps them, saves atomically with history, keeps the mode, reloads, and logs who', async () => {
    const gw = await startGateway(table());
    try {
      chmodSync(gw.configPath, 0o640);
      const t = json(await send(gw.gw.adminPort!, '/table', { headers: auth }));
      expect(t).toMatchObject({ allowEdit: true, version: gw.gw.table.version, file: gw.configPath });
      expect(t.text).not.toContain(TOKEN);
      expect(t.text).not.toContain('a-literal-secret');
      expect(t.text).toContain('token: "***"');
      expect(t.text).toContain('secret: "***"');
      expect(t.text).toContain('# the route table');

      const edited = `${t.text}  - { name: orders, path: /api/orders, upstream: orders }\n`;
      const check = await send(gw.gw.adminPort!, '/table/check', { method: 'POST', headers: { ...auth, 'content-type': 'application/yaml' }, body: edited });
      expect(check.status).toBe(200);
      expect(json(check).changes).toContain('route added: orders (/api/orders -> orders)');

      const put = await send(gw.gw.adminPort!, '/table', { method: 'PUT', headers: { ...auth, 'content-type': 'application/yaml', 'if-match': t.version }, body: edited });
      expect(put.status).toBe(200);
      expect(json(put)).toMatchObject({ outcome: 'applied', previousVersion: t.version });
      expect((await send(gw.port, '/api/orders/1')).status).toBe(200);
      expect(next.received.map((r) => r.url)).toEqual(['/api/orders/1']);
      const saved = readFileSync(gw.configPath, 'utf8');
      expect(saved).toContain(`token: ${TOKEN}`);
      expect(saved).toContain('secret: "a-literal-secret-of-at-least-32-bytes"');
      expect(saved).toContain('name: orders');
      expect(statSync(gw.configPath).mode & 0o777).toBe(0o640);
      const history = `${gw.configPath}.history`;
      expect(readdirSync(history)).toHaveLength(1);
      expect(readFileSync(`${history}/${readdirSync(history)[0]}`, 'utf8')).not.toContain('name: orders');
      expect(readdirSync(dirname(gw.configPath)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
      const line = gw.logs.lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('route table edited in the console by admin token'));
      expect(line).toMatchObject({ changes: ['/api/orders: monolith -> orders', 'route added: orders (/api/orders -> orders)'] });
      expect(JSON.stringify(gw.logs.lines)).not.toContain(TOKEN);

      const reloads = json(await send(gw.gw.adminPort!, '/reloads', { headers: auth })).reloads;
      expect(reloads[0]).toMatchObject({ trigger: 'console', outcome: 'applied', previousVersion: t.version, by: expect.stringMatching(/^admin token [0-9a-f]{8} from /) });

      // Two more saves: only the last two earlier versions are kept.
      for (const n of [1, 2]) {
        const cur = json(await send(gw.gw.adminPort!, '/table', { headers: auth }));
        const r = await send(gw.gw.adminPort!, '/table', { method: 'PUT', headers: { ...auth, 'content-type': 'application/yaml', 'if-match': cur.version }, body: `${cur.text}# edit ${n}\n` });
        expect(r.status).toBe(200);
      }
      expect(readdirSync(history)).toHaveLength(2);
    } finally {
      await gw.stop();
    }
  });

  test('a stale edit is refused with 409 and what changed meanwhile; an edit of a file changed on disk too; nothing is written', async () => {
    const gw = await startGateway(table());
    try {
      const base = json(await send(gw.gw.adminPort!, '/table', { headers: auth }));
      // Someone else saves first.
      const first = await send(gw.gw.adminPort!, '/table', { method: 'PUT', headers: { ...auth, 'content-type': 'application/yaml', 'if-match': base.version }, body: `${base.text}  - { name: orders, path: /api/orders, upstream: orders }\n` });
      expect(first.status).toBe(200);
      const before = readFileSync(gw.configPath, 'utf8');
      const stale = await send(gw.gw.adminPort!, '/table', { method: 'PUT', headers: { ...auth, 'content-type': 'application/yaml', 'if-match': base.version }, body: `${base.text}  - { name: other, path: /other, upstream: orders }\n` });
      expect(stale.status).toBe(409);
      expect(json(stale)).toMatchObject({ error: { code: 'STALE_EDIT' }, version: gw.gw.table.version, changes: ['/api/orders: monolith -> orders', 'route added: orders (/api/orders -> orders)'], knownBase: true });
      expect(readFileSync(gw.configPath, 'utf8')).toBe(before);

      // The file is edited by hand (watching is off): the served version is no longer what is on disk.
      const served = json(await send(gw.gw.adminPort!, '/table', { headers: auth }));
      writeFileSync(gw.configPath, before.replace('path: /api/orders', 'path: /api/orders2'));
      const onDisk = await send(gw.gw.adminPort!, '/table', { method: 'PUT', headers: { ...auth, 'content-type': 'application/yaml', 'if-match': served.version }, body: `${served.text}# mine\n` });
      expect(onDisk.status).toBe(409);
      expect(json(onDisk).changes).toEqual(['/api/orders: orders -> monolith', '/api/orders2: monolith -> orders', 'route changed: orders (path)']);
    } finally {
      await gw.stop();
    }
  });

  test('refusals: no If-Match (428), not YAML (415), an invalid edit (422, nothing written), a masked secret with nothing to keep (422), read-only (403)', async () => {
    const gw = await startGateway(table());
    try {
      const t = json(await send(gw.gw.adminPort!, '/table', { headers: auth }));
      const before = readFileSync(gw.configPath, 'utf8');
      const put = (body: string, headers: Record<string, string>) => send(gw.gw.adminPort!, '/table', { method: 'PUT', headers: { ...auth, ...headers }, body });
      expect((await put(t.text, { 'content-type': 'application/yaml' })).status).toBe(428);
      const form = await put('a=b', { 'content-type': 'application/x-www-form-urlencoded', 'if-match': t.version });
      expect(form.status).toBe(415);
      expect(json(form).error.code).toBe('YAML_REQUIRED');
      const bad = await put(t.text.replace('upstream: monolith }', 'upstream: monolit }'), { 'content-type': 'application/yaml', 'if-match': t.version });
      expect(bad.status).toBe(422);
      expect(json(bad).problems[0]).toMatchObject({ line: 10, message: expect.stringContaining('unknown upstream "monolit"') });
      const masked = await put(`${t.text}  - { name: x, path: /x, upstream: orders, token: "***" }\n`, { 'content-type': 'application/yaml', 'if-match': t.version });
      expect(masked.status).toBe(422);
      expect(json(masked).problems[0].message).toContain('routes.1.token is masked');
      expect(readFileSync(gw.configPath, 'utf8')).toBe(before);
      expect(existsSync(`${gw.configPath}.history`)).toBe(false);
    } finally {
      await gw.stop();
    }
    const ro = await startGateway(table().replace('allowEdit: true', 'allowEdit: false'));
    try {
      const t = json(await send(ro.gw.adminPort!, '/table', { headers: auth }));
      expect(t.allowEdit).toBe(false);
      const r = await send(ro.gw.adminPort!, '/table', { method: 'PUT', headers: { ...auth, 'content-type': 'application/yaml', 'if-match': t.version }, body: t.text });
      expect(r.status).toBe(403);
      expect(json(r).error.code).toBe('READ_ONLY');
    } finally {
      await ro.stop();
    }
  });
});
