/**
 * The admin API (koa, its own port) and the Prometheus metrics it serves,
 * against a real gateway and real upstreams on loopback.
 */
import { request } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { loadTableText } from '../src/config/load';
import { ConfigError, Gateway } from '../src/server';
import { closedPort, json, send, startGateway, startUpstream, writeTable, type Reply, type TestGateway, type Upstream } from './helpers/servers';

const TOKEN = 's3cret-token-value';
const AUTH = { authorization: `Bearer ${TOKEN}` };

function admin(gw: TestGateway, path: string, opts: Parameters<typeof send>[2] = {}): Promise<Reply> {
  return send(gw.gw.adminPort!, path, opts);
}

/** An upstream that answers with its own name, so a test sees where a request went. */
function named(name: string): Promise<Upstream> {
  return startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(name);
  });
}

/** A POST whose body is sent chunked (no content-length), so the size is only known while reading. */
function postChunked(port: number, path: string, headers: Record<string, string>, chunks: string[]): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers: { ...headers, 'transfer-encoding': 'chunked' }, agent: false }, (res) => {
      const body: Buffer[] = [];
      res.on('data', (c: Buffer) => body.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(body).toString() }));
      res.on('error', reject);
    });
    // The server may answer (and stop reading) before the whole body is written.
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

describe('admin API with a token', () => {
  let monolith: Upstream;
  let orders: Upstream;
  let gw: TestGateway;
  const tableText = (extraRoutes = '', token = TOKEN) => `
admin: { port: 0, host: 127.0.0.1, token: ${token}, maxBodyBytes: 1024 }
reload: { watch: false }
upstreams:
  monolith: { url: ${monolith.url} }
  orders: { url: ${orders.url} }
routes:
  - { name: legacy, path: /, upstream: monolith }
${extraRoutes}`;

  beforeAll(async () => {
    monolith = await named('monolith');
    orders = await named('orders');
    gw = await startGateway(tableText());
  });
  afterAll(async () => {
    await gw?.stop();
    await monolith?.close();
    await orders?.close();
  });

  test('no token: 401 JSON with WWW-Authenticate', async () => {
    for (const path of ['/routes', '/upstreams', '/metrics']) {
      const r = await admin(gw, path);
      expect(r.status).toBe(401);
      expect(r.headers['content-type']).toMatch(/^application\/json/);
      expect(r.headers['www-authenticate']).toMatch(/^Bearer realm=/);
      expect(json(r).error.code).toBe('UNAUTHORIZED');
    }
    const post = await admin(gw, '/reload', { method: 'POST' });
    expect(post.status).toBe(401);
    const validate = await admin(gw, '/routes/validate', { method: 'POST', body: 'routes: []' });
    expect(validate.status).toBe(401);
  });

  test('a wrong token, a token prefix, or another scheme: 401', async () => {
    for (const authorization of [`Bearer wrong-token`, `Bearer ${TOKEN.slice(0, -1)}`, `Bearer ${TOKEN}x`, `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}`, TOKEN, 'Bearer ']) {
      const r = await admin(gw, '/routes', { headers: { authorization } });
      expect({ authorization, status: r.status }).toEqual({ authorization, status: 401 });
      expect(r.headers['www-authenticate']).toBeDefined();
    }
  });

  test('the right token: 200', async () => {
    const r = await admin(gw, '/routes', { headers: AUTH });
    expect(r.status).toBe(200);
    const lower = await admin(gw, '/upstreams', { headers: { authorization: `bearer ${TOKEN}` } });
    expect(lower.status).toBe(200);
  });

  test('/healthz and /readyz need no token', async () => {
    const h = await admin(gw, '/healthz');
    expect(h.status).toBe(200);
    expect(json(h)).toEqual({ status: 'ok' });
    const ready = await admin(gw, '/readyz');
    expect(ready.status).toBe(200);
    expect(json(ready)).toEqual({ status: 'ready', version: gw.gw.table.version });
  });

  test('an unknown path is a 404 JSON error; a wrong method is a JSON error too', async () => {
    const r = await admin(gw, '/nope', { headers: AUTH });
    expect(r.status).toBe(404);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    expect(json(r).error.code).toBe('NOT_FOUND');
    const noToken = await admin(gw, '/nope');
    expect(noToken.status).toBe(404);
    const wrongMethod = await admin(gw, '/routes', { method: 'DELETE', headers: AUTH });
    expect(wrongMethod.status).toBe(405);
    expect(json(wrongMethod).error).toBeDefined();
  });

  test('GET /routes shows the live table with the token as ***', async () => {
    const r = await admin(gw, '/routes', { headers: AUTH });
    const body = json(r);
    expect(body.version).toBe(gw.gw.table.version);
    expect(body.lastReloadError).toBeNull();
    expect(body.admin.token).toBe('***');
    expect(body.routes).toEqual([expect.objectContaining({ name: 'legacy', path: '/', upstream: 'monolith' })]);
    expect(body.upstreams.orders.url).toBe(orders.url);
    expect(r.body).not.toContain(TOKEN);
  });

  test('GET /upstreams lists every upstream with its connections', async () => {
    await send(gw.port, '/warm');
    const r = await admin(gw, '/upstreams', { headers: AUTH });
    expect(r.status).toBe(200);
    const ups = json(r).upstreams as Array<Record<string, unknown>>;
    expect(ups.map((u) => u.name).sort()).toEqual(['monolith', 'orders']);
    const m = ups.find((u) => u.name === 'monolith')!;
    expect(m).toMatchObject({ urls: [monolith.url], openConnections: 1, busyConnections: 0 });
  });

  describe('POST /routes/validate', () => {
    test('an invalid table: 422 with problems carrying line and col', async () => {
      const candidate = tableText('  - { name: orders, path: /api/orders, upstream: ordrs }');
      const r = await admin(gw, '/routes/validate', { method: 'POST', headers: AUTH, body: candidate });
      expect(r.status).toBe(422);
      const body = json(r);
      expect(body.valid).toBe(false);
      // The candidate starts with a newline: the orders route is on line 9; its upstream value at column 50.
      expect(body.problems).toEqual([
        {
          line: 9,
          col: 50,
          message: expect.stringContaining('unknown upstream "ordrs" (did you mean "orders"?)'),
          text: expect.stringMatching(/^<candidate>:9:50 routes\[1\] \(orders\): unknown upstream/),
        },
      ]);
    });

    test('bad YAML: 422 with the syntax error located', async () => {
      const r = await admin(gw, '/routes/validate', { method: 'POST', headers: AUTH, body: 'upstreams:\n  a: { url: http://x\nroutes: []\n' });
      expect(r.status).toBe(422);
      const p = json(r).problems[0];
      expect(p.message).toMatch(/^YAML: /);
      expect(p.line).toBeGreaterThanOrEqual(2);
      expect(p.col).toBeGreaterThanOrEqual(1);
    });

    test('a valid candidate: 200 with the changes, and nothing applied', async () => {
      const before = json(await admin(gw, '/routes', { headers: AUTH }));
      const r = await admin(gw, '/routes/validate', {
        method: 'POST',
        headers: { ...AUTH, 'content-type': 'application/yaml' },
        body: tableText('  - { name: orders, path: /api/orders, upstream: orders }'),
      });
      expect(r.status).toBe(200);
      const body = json(r);
      expect(body.valid).toBe(true);
      expect(body.version).toMatch(/^[0-9a-f]{12}$/);
      expect(body.version).not.toBe(before.version);
      expect(body.changes).toEqual(['/api/orders: monolith -> orders', 'route added: orders (/api/orders -> orders)']);
      const after = json(await admin(gw, '/routes', { headers: AUTH }));
      expect(after.version).toBe(before.version);
      expect(after.routes).toHaveLength(1);
      const served = await send(gw.port, '/api/orders/1');
      expect(served.body).toBe('monolith');
    });

    test('a candidate with a rotated token never echoes either token', async () => {
      const r = await admin(gw, '/routes/validate', { method: 'POST', headers: AUTH, body: tableText('', 'another-token-value') });
      expect(r.status).toBe(200);
      expect(json(r).changes).toEqual([]);
      expect(r.body).not.toContain('another-token-value');
      expect(r.body).not.toContain(TOKEN);
    });

    test('admin.host 0.0.0.0 without a token is refused', async () => {
      const r = await admin(gw, '/routes/validate', { method: 'POST', headers: AUTH, body: `admin: { host: 0.0.0.0 }\nupstreams: { a: { url: http://127.0.0.1:1 } }\nroutes: []\n` });
      expect(r.status).toBe(422);
      expect(json(r).problems).toEqual([expect.objectContaining({ line: 1, col: 16, message: expect.stringContaining('admin.token is required') })]);
    });

    test('a body over admin.maxBodyBytes: 413 JSON (declared length)', async () => {
      const r = await admin(gw, '/routes/validate', { method: 'POST', headers: AUTH, body: `# ${'x'.repeat(2000)}\n` });
      expect(r.status).toBe(413);
      expect(r.headers['content-type']).toMatch(/^application\/json/);
      expect(json(r).error.code).toBe('BODY_TOO_LARGE');
    });

    test('a body over admin.maxBodyBytes: 413 JSON (chunked, no declared length)', async () => {
      const r = await postChunked(gw.gw.adminPort!, '/routes/validate', AUTH, [`# ${'x'.repeat(600)}\n`, `# ${'y'.repeat(600)}\n`, `# ${'z'.repeat(600)}\n`]);
      expect(r.status).toBe(413);
      expect(json(r).error.code).toBe('BODY_TOO_LARGE');
      // The admin API still answers afterwards.
      expect((await admin(gw, '/healthz')).status).toBe(200);
    });

    test('the body must be UTF-8; a U+FFFD character in a comment is still UTF-8', async () => {
      const invalid = Buffer.concat([Buffer.from('# '), Buffer.from([0xff, 0xfe]), Buffer.from(`\n${tableText()}`)]);
      const bad = await admin(gw, '/routes/validate', { method: 'POST', headers: AUTH, body: invalid });
      expect(bad.status).toBe(400);
      expect(json(bad).error.code).toBe('BAD_BODY');
      const ok = await admin(gw, '/routes/validate', { method: 'POST', headers: AUTH, body: `# replacement character: \uFFFD\n${tableText()}` });
      expect(ok.status).toBe(200);
      expect(json(ok).valid).toBe(true);
    });

    test('an empty or blank body: 400', async () => {
      for (const body of ['', '  \n\n ']) {
        const r = await admin(gw, '/routes/validate', { method: 'POST', headers: AUTH, body });
        expect(r.status).toBe(400);
        expect(json(r).error.code).toBe('EMPTY_BODY');
      }
    });
  });

  describe('POST /reload', () => {
    test('unchanged, applied, failed, and the token rotates with the table', async () => {
      const unchanged = await admin(gw, '/reload', { method: 'POST', headers: AUTH });
      expect(unchanged.status).toBe(200);
      expect(json(unchanged)).toEqual({ outcome: 'unchanged', version: gw.gw.table.version });

      const previous = gw.gw.table.version;
      writeFileSync(gw.configPath, tableText('  - { name: orders, path: /api/orders, upstream: orders }'));
      const applied = await admin(gw, '/reload', { method: 'POST', headers: AUTH });
      expect(applied.status).toBe(200);
      expect(json(applied)).toMatchObject({
        outcome: 'applied',
        version: gw.gw.table.version,
        previousVersion: previous,
        changes: ['/api/orders: monolith -> orders', 'route added: orders (/api/orders -> orders)'],
      });
      expect((await send(gw.port, '/api/orders/1')).body).toBe('orders');

      writeFileSync(gw.configPath, tableText('  - { name: orders, path: /api/orders, upstream: nowhere }'));
      const failed = await admin(gw, '/reload', { method: 'POST', headers: AUTH });
      expect(failed.status).toBe(422);
      const f = json(failed);
      expect(f.outcome).toBe('failed');
      expect(f.version).toBe(gw.gw.table.version);
      expect(f.problems).toEqual([expect.objectContaining({ line: 9, col: 50, message: expect.stringContaining('unknown upstream "nowhere"') })]);
      expect((await send(gw.port, '/api/orders/1')).body).toBe('orders');
      const routes = json(await admin(gw, '/routes', { headers: AUTH }));
      expect(routes.lastReloadError).toMatchObject({ trigger: 'api', problems: [expect.objectContaining({ line: 9, col: 50 })] });

      // Rotating the token: the new one works at once, the old one no longer does.
      writeFileSync(gw.configPath, tableText('', 'rotated-token-value'));
      expect((await admin(gw, '/reload', { method: 'POST', headers: AUTH })).status).toBe(200);
      expect((await admin(gw, '/routes', { headers: AUTH })).status).toBe(401);
      const rotated = await admin(gw, '/routes', { headers: { authorization: 'Bearer rotated-token-value' } });
      expect(rotated.status).toBe(200);
      expect(json(rotated).lastReloadError).toBeNull();
      expect(rotated.body).not.toContain('rotated-token-value');
      // Back to the first token for the tests that follow.
      writeFileSync(gw.configPath, tableText());
      expect((await admin(gw, '/reload', { method: 'POST', headers: { authorization: 'Bearer rotated-token-value' } })).status).toBe(200);
    });
  });

  test('a reload that drops the token (or the whole admin block) does not open the running admin API', async () => {
    // The listener keeps its address until a restart, so it keeps requiring a token too.
    try {
      writeFileSync(gw.configPath, tableText().replace(/^admin: .*$/m, 'admin: { port: 0, host: 127.0.0.1, maxBodyBytes: 1024 }'));
      expect((await gw.gw.reload('api')).outcome).toBe('applied');
      expect((await admin(gw, '/routes')).status).toBe(401);
      expect((await admin(gw, '/reload', { method: 'POST' })).status).toBe(401);
      expect((await admin(gw, '/routes', { headers: AUTH })).status).toBe(200);
      writeFileSync(gw.configPath, tableText().replace(/^admin: .*$/m, ''));
      expect((await gw.gw.reload('api')).outcome).toBe('applied');
      expect((await admin(gw, '/routes')).status).toBe(401);
      expect((await admin(gw, '/routes', { headers: AUTH })).status).toBe(200);
    } finally {
      writeFileSync(gw.configPath, tableText());
      await gw.gw.reload('api');
    }
    expect((await admin(gw, '/routes')).status).toBe(401);
    expect((await admin(gw, '/routes', { headers: AUTH })).status).toBe(200);
  });

  test('/readyz answers 503 while the gateway drains', async () => {
    const slow = await startUpstream((_req, res) => setTimeout(() => res.end('done'), 400));
    const g = await startGateway(`
admin: { port: 0 }
upstreams: { slow: { url: ${slow.url} } }
routes: [ { name: all, path: /, upstream: slow } ]
`);
    try {
      const pending = send(g.port, '/wait');
      const deadline = Date.now() + 2000;
      while (slow.received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      const adminPort = g.gw.adminPort!;
      const stopping = g.stop();
      const r = await send(adminPort, '/readyz');
      expect(r.status).toBe(503);
      expect(json(r).status).toBe('draining');
      expect((await pending).body).toBe('done');
      await stopping;
    } finally {
      await g.stop();
      await slow.close();
    }
  });

  test('no token ever reaches the logs', async () => {
    // Everything above ran against this gateway: failed auth, validation, reloads, rotation.
    await admin(gw, '/routes', { headers: { authorization: `Bearer ${TOKEN}-wrong` } });
    await gw.gw.reload('api');
    const text = gw.logs.text();
    expect(text.length).toBeGreaterThan(0);
    expect(text).toContain('admin API listening');
    expect(text).toContain('route table applied');
    for (const secret of [TOKEN, 'rotated-token-value', 'another-token-value']) expect(text).not.toContain(secret);
  });
});

describe('admin configuration', () => {
  test('admin.host 0.0.0.0 without a token fails validation, at the host', async () => {
    const yaml = `admin:\n  host: 0.0.0.0\nupstreams: { a: { url: http://127.0.0.1:1 } }\nroutes: []\n`;
    const r = loadTableText(yaml, 'routes.yaml', {});
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toEqual([{ file: 'routes.yaml', line: 2, col: 9, message: expect.stringContaining('admin.token is required') }]);
    await expect(Gateway.start({ configPath: writeTable(yaml), port: 0, host: '127.0.0.1', env: {} })).rejects.toBeInstanceOf(ConfigError);
    // With a token it is accepted.
    expect(loadTableText(yaml.replace('host: 0.0.0.0', `host: 0.0.0.0\n  token: ${TOKEN}`), 'routes.yaml', {}).ok).toBe(true);
  });

  test('on loopback without a token the admin API is open', async () => {
    const up = await named('app');
    const gw = await startGateway(`
admin: { port: 0 }
upstreams: { app: { url: ${up.url} } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      expect((await admin(gw, '/routes')).status).toBe(200);
    } finally {
      await gw.stop();
      await up.close();
    }
  });

  test('without an admin block there is no admin port', async () => {
    const up = await named('app');
    const gw = await startGateway(`
upstreams: { app: { url: ${up.url} } }
routes: [ { name: all, path: /, upstream: app } ]
`);
    try {
      expect(gw.gw.adminPort).toBeUndefined();
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});

/** One Prometheus text exposition sample: name, optional labels, value. */
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:\\.|[^"\\])*",?)*\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$/;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      expect(line).toMatch(/^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped))$/);
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:\\.|[^"\\])*)"/g)) labels[l[1]!] = l[2]!;
    const v = m[3]!;
    samples.push({ name: m[1]!, labels, value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v) });
  }
  return samples;
}

function find(samples: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

describe('GET /metrics', () => {
  let users: Upstream;
  let gw: TestGateway;
  let deadPort: number;
  beforeAll(async () => {
    users = await named('users');
    deadPort = await closedPort();
    gw = await startGateway(`
admin: { port: 0, token: ${TOKEN} }
reload: { watch: false }
upstreams:
  users: { url: ${users.url} }
  dead: { url: http://127.0.0.1:${deadPort}, timeoutMs: 2000 }
routes:
  - { name: users, path: /api/users, upstream: users }
  - { name: gone, path: /api/gone, upstream: dead }
`);
  });
  afterAll(async () => {
    await gw?.stop();
    await users?.close();
  });

  const scrape = async () => {
    const r = await admin(gw, '/metrics', { headers: AUTH });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain/);
    return { text: r.body, samples: parseMetrics(r.body) };
  };

  test('parses as Prometheus text and carries the gateway series', async () => {
    for (let i = 0; i < 3; i++) expect((await send(gw.port, `/api/users/${1000 + i}?token=abc`)).status).toBe(200);
    expect((await send(gw.port, '/api/gone/42')).status).toBe(502);
    expect((await send(gw.port, '/nowhere/77')).status).toBe(404);

    const { text, samples } = await scrape();

    expect(find(samples, 'strangler_requests_total', { route: 'users', upstream: 'users', status_class: '2xx' }).map((s) => s.value)).toEqual([3]);
    expect(find(samples, 'strangler_requests_total', { route: 'gone', upstream: 'dead', status_class: '5xx' }).map((s) => s.value)).toEqual([1]);
    expect(find(samples, 'strangler_requests_total', { route: '(none)', status_class: '4xx' }).map((s) => s.value)).toEqual([1]);
    // Labels are bounded: route, upstream and status class only, never a raw path or query.
    for (const s of find(samples, 'strangler_requests_total')) {
      expect(Object.keys(s.labels).sort()).toEqual(['route', 'status_class', 'upstream']);
      expect(s.labels.status_class).toMatch(/^[1-5]xx$/);
    }
    // Checked in the label sets and names only: a sample value (an event-loop lag of 0.0100100 s) may hold any digits.
    const labelsAndNames = text.split('\n').map((line) => line.replace(/ [^ ]+$/, '')).join('\n');
    for (const raw of ['/api/users/1000', '1001', '/nowhere', 'token=abc', '/api/gone']) expect(labelsAndNames).not.toContain(raw);

    const buckets = find(samples, 'strangler_request_duration_seconds_bucket', { route: 'users', upstream: 'users', status_class: '2xx' });
    expect(buckets.length).toBeGreaterThan(5);
    expect(buckets.find((b) => b.labels.le === '+Inf')!.value).toBe(3);
    expect(find(samples, 'strangler_request_duration_seconds_count', { route: 'users', status_class: '2xx' })[0]!.value).toBe(3);
    // Every duration series is a well-formed histogram: cumulative buckets ending at +Inf = _count.
    const counts = find(samples, 'strangler_request_duration_seconds_count');
    expect(counts.length).toBeGreaterThanOrEqual(3);
    for (const c of counts) {
      const series = find(samples, 'strangler_request_duration_seconds_bucket', c.labels);
      const values = series.map((b) => b.value);
      expect(values).toEqual([...values].sort((x, y) => x - y));
      expect(series.map((b) => (b.labels.le === '+Inf' ? Infinity : Number(b.labels.le)))).toEqual(series.map((b) => (b.labels.le === '+Inf' ? Infinity : Number(b.labels.le))).sort((x, y) => x - y));
      expect(series[series.length - 1]!.labels.le).toBe('+Inf');
      expect(series[series.length - 1]!.value).toBe(c.value);
      expect(find(samples, 'strangler_request_duration_seconds_sum', c.labels)[0]!.value).toBeGreaterThanOrEqual(0);
    }

    expect(find(samples, 'strangler_requests_in_flight')).toEqual([{ name: 'strangler_requests_in_flight', labels: {}, value: 0 }]);
    expect(find(samples, 'strangler_upstream_errors_total', { upstream: 'dead', kind: 'UPSTREAM_CONNECT_FAILED' }).map((s) => s.value)).toEqual([1]);
    expect(find(samples, 'strangler_upstream_errors_total', { upstream: 'users' })).toEqual([]);
    for (const outcome of ['applied', 'unchanged', 'failed']) {
      expect(find(samples, 'strangler_config_reloads_total', { outcome })).toHaveLength(1);
    }
    expect(find(samples, 'strangler_config_version_info')).toEqual([{ name: 'strangler_config_version_info', labels: { version: gw.gw.table.version }, value: 1 }]);
    expect(find(samples, 'strangler_upstream_open_connections', { upstream: 'users' })[0]!.value).toBe(1);
  });

  test('in flight counts a request being answered', async () => {
    const slow = await startUpstream((_req, res) => setTimeout(() => res.end('slow'), 400));
    const g = await startGateway(`
admin: { port: 0 }
upstreams: { slow: { url: ${slow.url} } }
routes: [ { name: all, path: /, upstream: slow } ]
`);
    try {
      const pending = send(g.port, '/wait');
      const deadline = Date.now() + 2000;
      while (slow.received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      const during = parseMetrics((await admin(g, '/metrics')).body);
      expect(find(during, 'strangler_requests_in_flight')[0]!.value).toBe(1);
      expect((await pending).body).toBe('slow');
      const after = parseMetrics((await admin(g, '/metrics')).body);
      expect(find(after, 'strangler_requests_in_flight')[0]!.value).toBe(0);
    } finally {
      await g.stop();
      await slow.close();
    }
  });

  test('reload outcomes are counted and the version label follows the table', async () => {
    const count = (samples: Sample[], outcome: string) => find(samples, 'strangler_config_reloads_total', { outcome })[0]!.value;
    const before = (await scrape()).samples;
    expect((await gw.gw.reload('api')).outcome).toBe('unchanged');
    const original = readFileSync(gw.configPath, 'utf8');
    writeFileSync(gw.configPath, original.replace('upstream: dead', 'upstream: nowhere'));
    expect((await gw.gw.reload('api')).outcome).toBe('failed');
    writeFileSync(gw.configPath, original.replace('timeoutMs: 2000', 'timeoutMs: 3000'));
    expect((await gw.gw.reload('api')).outcome).toBe('applied');
    const after = (await scrape()).samples;
    expect(count(after, 'unchanged') - count(before, 'unchanged')).toBe(1);
    expect(count(after, 'failed') - count(before, 'failed')).toBe(1);
    expect(count(after, 'applied') - count(before, 'applied')).toBe(1);
    expect(find(after, 'strangler_config_version_info')).toEqual([{ name: 'strangler_config_version_info', labels: { version: gw.gw.table.version }, value: 1 }]);
    expect(find(after, 'strangler_config_last_reload_timestamp_seconds', { outcome: 'applied' })[0]!.value).toBeGreaterThan(Date.now() / 1000 - 60);
  });
});
