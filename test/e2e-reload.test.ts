/**
 * Hot reload end to end: real route table files edited the ways editors and
 * deploy tools do, real upstreams and a real gateway on loopback.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { spawnGateway, type GatewayProcess } from './helpers/process';
import { json, send, startGateway, startUpstream, until, writeTable, type Reply, type TestGateway, type Upstream } from './helpers/servers';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls an asynchronous check until it holds; bounded by `timeoutMs`. */
async function eventually(check: () => Promise<boolean>, timeoutMs = 2000, stepMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(stepMs);
  }
}

/** An upstream that answers with its own name, so a test sees where a request went. */
function named(name: string, delayMs = 0): Promise<Upstream> {
  return startUpstream((_req, res) => {
    const answer = () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(name);
    };
    if (delayMs > 0) setTimeout(answer, delayMs);
    else answer();
  });
}

function admin(gw: TestGateway, path: string, opts: Parameters<typeof send>[2] = {}): Promise<Reply> {
  return send(gw.gw.adminPort!, path, opts);
}

async function reloadsCounted(gw: TestGateway, outcome: string): Promise<number> {
  const text = (await admin(gw, '/metrics')).body;
  const m = new RegExp(`^strangler_config_reloads_total\\{outcome="${outcome}"\\} (\\d+)$`, 'm').exec(text);
  if (!m) throw new Error(`no strangler_config_reloads_total{outcome="${outcome}"} in /metrics`);
  return Number(m[1]);
}

const routesOf = async (gw: TestGateway) => json(await admin(gw, '/routes'));

describe('hot reload by file edit', () => {
  let monolith: Upstream;
  let orders: Upstream;
  beforeAll(async () => {
    monolith = await named('monolith');
    orders = await named('orders');
  });
  afterAll(async () => {
    await monolith?.close();
    await orders?.close();
  });

  // pollIntervalMs: 0 turns the stat poll off, so these pass only if file events are seen.
  const before = () => `
admin: { port: 0 }
reload: { debounceMs: 50, pollIntervalMs: 0 }
upstreams:
  monolith: { url: ${monolith.url} }
  orders: { url: ${orders.url} }
routes:
  - { name: legacy, path: /, upstream: monolith }
`;
  const after = () => `${before()}  - { name: orders, path: /api/orders, upstream: orders }\n`;

  const servedBy = async (gw: TestGateway, path: string) => (await send(gw.port, path)).body;

  const edits: Array<[string, (file: string, text: string) => Promise<void>]> = [
    [
      'in-place write',
      async (file, text) => {
        writeFileSync(file, text);
      },
    ],
    [
      'atomic rename into place',
      async (file, text) => {
        const tmp = join(dirname(file), `.routes.yaml.${process.pid}.tmp`);
        writeFileSync(tmp, text);
        renameSync(tmp, file);
      },
    ],
    [
      'delete then create',
      async (file, text) => {
        unlinkSync(file);
        await sleep(150);
        writeFileSync(file, text);
      },
    ],
  ];

  test.each(edits)('%s: the new route serves within 2 s', async (_kind, edit) => {
    const gw = await startGateway(before());
    try {
      expect(await servedBy(gw, '/api/orders/1')).toBe('monolith');
      const version = gw.gw.table.version;
      await edit(gw.configPath, after());
      await eventually(async () => (await servedBy(gw, '/api/orders/1')) === 'orders', 2000);
      expect(await servedBy(gw, '/other')).toBe('monolith');
      expect(gw.gw.table.version).not.toBe(version);
      // Whatever happened on the way (a delete is briefly a missing file), the end state is clean.
      await eventually(async () => (await routesOf(gw)).lastReloadError === null, 2000);
      const applied = gw.logs.lines.filter((l) => l.msg === 'route table applied: /api/orders: monolith -> orders; route added: orders (/api/orders -> orders)');
      expect(applied).toHaveLength(1);
      expect(applied[0]).toMatchObject({ trigger: 'watch', previousVersion: version });
    } finally {
      await gw.stop();
    }
  });

  test('a second edit after an atomic rename is still seen (the watch survives the inode swap)', async () => {
    const gw = await startGateway(before());
    try {
      const [, rename] = edits[1]!;
      await rename(gw.configPath, after());
      await eventually(async () => (await servedBy(gw, '/api/orders/1')) === 'orders', 2000);
      await rename(gw.configPath, before());
      await eventually(async () => (await servedBy(gw, '/api/orders/1')) === 'monolith', 2000);
      writeFileSync(gw.configPath, after());
      await eventually(async () => (await servedBy(gw, '/api/orders/1')) === 'orders', 2000);
    } finally {
      await gw.stop();
    }
  });

  test('reload.watch: false ignores edits until asked', async () => {
    const gw = await startGateway(before().replace('reload: {', 'reload: { watch: false,'));
    try {
      writeFileSync(gw.configPath, after());
      await sleep(400);
      expect(await servedBy(gw, '/api/orders/1')).toBe('monolith');
      expect((await gw.gw.reload('api')).outcome).toBe('applied');
      expect(await servedBy(gw, '/api/orders/1')).toBe('orders');
    } finally {
      await gw.stop();
    }
  });
});

describe('an invalid edit keeps the old table', () => {
  let monolith: Upstream;
  let orders: Upstream;
  beforeAll(async () => {
    monolith = await named('monolith');
    orders = await named('orders');
  });
  afterAll(async () => {
    await monolith?.close();
    await orders?.close();
  });

  // Line numbers below count from this text's first line (it starts with a newline, so line 1 is empty).
  const good = (extra = '') => `
admin: { port: 0 }
reload: { debounceMs: 50, pollIntervalMs: 0 }
upstreams:
  monolith: { url: ${monolith.url} }
  orders: { url: ${orders.url} }
routes:
  - { name: legacy, path: /, upstream: monolith }
${extra}`;
  const carved = () => good('  - { name: orders, path: /api/orders, upstream: orders }\n');

  const cases: Array<[string, (file: string) => void, { line: number; col: number; message: RegExp }]> = [
    ['bad YAML', (f) => writeFileSync(f, carved().replace('upstream: orders }', 'upstream: orders')), { line: 10, col: 1, message: /^YAML: / }],
    ['an unknown upstream', (f) => writeFileSync(f, good('  - { name: orders, path: /api/orders, upstream: ordres }\n')), { line: 9, col: 50, message: /unknown upstream "ordres" \(did you mean "orders"\?\)/ }],
    ['a deleted file', (f) => unlinkSync(f), { line: 1, col: 1, message: /cannot read the route table: file not found/ }],
    ['a half-written file', (f) => writeFileSync(f, carved().slice(0, carved().indexOf('path: /api/orders') + 10)), { line: 9, col: 31, message: /^YAML: / }],
  ];

  test.each(cases)('%s: old table serves, error is reported with line/col, failed reloads counted; a good edit clears it', async (_kind, breakIt, where) => {
    const gw = await startGateway(good());
    try {
      const failedBefore = await reloadsCounted(gw, 'failed');
      const version = gw.gw.table.version;
      breakIt(gw.configPath);
      await eventually(async () => (await routesOf(gw)).lastReloadError !== null, 2000);

      const routes = await routesOf(gw);
      expect(routes.version).toBe(version);
      expect(routes.lastReloadError.trigger).toBe('watch');
      expect(routes.lastReloadError.problems[0]).toMatchObject({ line: where.line, col: where.col });
      expect(routes.lastReloadError.problems[0].message).toMatch(where.message);
      expect(routes.lastReloadError.problems[0].text).toBe(`${gw.configPath}:${where.line}:${where.col} ${routes.lastReloadError.problems[0].message}`);
      // Still the old table: /api/orders goes to the monolith, as before the edit.
      for (let i = 0; i < 5; i++) expect((await send(gw.port, `/api/orders/${i}`)).body).toBe('monolith');
      expect(await reloadsCounted(gw, 'failed')).toBeGreaterThan(failedBefore);
      expect(await reloadsCounted(gw, 'applied')).toBe(0);
      expect(gw.logs.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith(`route table rejected, still serving version ${version}`))).toBe(true);

      writeFileSync(gw.configPath, carved());
      await eventually(async () => (await send(gw.port, '/api/orders/1')).body === 'orders', 2000);
      expect((await routesOf(gw)).lastReloadError).toBeNull();
      expect(await reloadsCounted(gw, 'applied')).toBe(1);
    } finally {
      await gw.stop();
    }
  });

  test('a file written in two halves: the first half is rejected, the whole is applied', async () => {
    const gw = await startGateway(good());
    try {
      const text = carved();
      const cut = text.indexOf('path: /api/orders') + 10;
      writeFileSync(gw.configPath, text.slice(0, cut));
      await eventually(async () => (await routesOf(gw)).lastReloadError !== null, 2000);
      expect((await send(gw.port, '/api/orders/1')).body).toBe('monolith');
      writeFileSync(gw.configPath, text);
      await eventually(async () => (await send(gw.port, '/api/orders/1')).body === 'orders', 2000);
      expect((await routesOf(gw)).lastReloadError).toBeNull();
    } finally {
      await gw.stop();
    }
  });
});

describe('requests in flight during a reload', () => {
  let slowOld: Upstream;
  let fresh: Upstream;
  let gw: TestGateway;
  // The old upstream holds its answer until the test releases it (or 5 s pass), so timing cannot blur the test.
  const held: Array<() => void> = [];
  const releaseOld = () => held.splice(0).forEach((answer) => answer());
  beforeAll(async () => {
    slowOld = await startUpstream((_req, res) => {
      const answer = () => {
        clearTimeout(timer);
        if (!res.writableEnded) res.end('old');
      };
      const timer = setTimeout(answer, 5000);
      held.push(answer);
    });
    fresh = await named('new');
  });
  afterAll(async () => {
    releaseOld();
    await gw?.stop();
    await slowOld?.close();
    await fresh?.close();
  });

  test('finish against the OLD upstream; new requests go to the new one; metrics label each truly', async () => {
    gw = await startGateway(`
admin: { port: 0 }
reload: { watch: false }
upstreams: { old: { url: ${slowOld.url} } }
routes: [ { name: api, path: /api, upstream: old } ]
`);
    const inFlight = send(gw.port, '/api/slow');
    await until(() => held.length === 1, 2000);
    // The old upstream leaves the table entirely: its pool is retired while a request still uses it.
    writeFileSync(
      gw.configPath,
      `
admin: { port: 0 }
reload: { watch: false }
upstreams: { new: { url: ${fresh.url} } }
routes: [ { name: api, path: /api, upstream: new } ]
`,
    );
    const outcome = await gw.gw.reload('api');
    expect(outcome).toMatchObject({ outcome: 'applied', changes: expect.arrayContaining(['/api: old -> new']) });
    const next = await send(gw.port, '/api/fast');
    expect(next).toMatchObject({ status: 200, body: 'new' });
    // The first request is still waiting on the old upstream, through the swap.
    expect(gw.gw.inFlightRequests).toBe(1);
    // Past the retired pool's next sweep (every 500 ms): a busy connection is not cut.
    await sleep(600);
    releaseOld();
    const old = await inFlight;
    expect(old).toMatchObject({ status: 200, body: 'old' });
    expect(fresh.received.map((r) => r.url)).toEqual(['/api/fast']);
    expect(slowOld.received.map((r) => r.url)).toEqual(['/api/slow']);

    // Each request is counted under the upstream that really answered it.
    const counted = (await admin(gw, '/metrics')).body.split('\n').filter((l) => l.startsWith('strangler_requests_total{') && !l.endsWith(' 0'));
    expect(counted.sort()).toEqual([
      'strangler_requests_total{route="api",upstream="new",status_class="2xx"} 1',
      'strangler_requests_total{route="api",upstream="old",status_class="2xx"} 1',
    ]);
  });
});

describe('reloads under steady traffic', () => {
  let a: Upstream;
  let b: Upstream;
  let gw: TestGateway;
  beforeAll(async () => {
    a = await startUpstream((_req, res) => res.end('a'), { recordBody: false });
    b = await startUpstream((_req, res) => res.end('b'), { recordBody: false });
  });
  afterAll(async () => {
    await gw?.stop();
    await a?.close();
    await b?.close();
  });

  test('200 reloads while clients send requests drop none', async () => {
    // Each table knows only its own upstream, so every reload also retires a pool and makes one.
    const tableFor = (name: 'a' | 'b') => `
reload: { watch: false }
log: { access: off }
upstreams: { ${name}: { url: ${(name === 'a' ? a : b).url} } }
routes: [ { name: all, path: /, upstream: ${name} } ]
`;
    gw = await startGateway(tableFor('a'));
    const tables = [tableFor('b'), tableFor('a')];
    const RELOADS = 200;
    const MIN_REQUESTS = 400;
    const MAX_REQUESTS = 3000;
    const deadline = Date.now() + 9000;

    let reloadsDone = 0;
    let answeredDuringReloads = 0;
    const replies: Array<{ status: number; body: string } | { error: string }> = [];
    const outcomes = new Map<string, number>();
    const reloading = (async () => {
      for (let i = 0; i < RELOADS && Date.now() < deadline; i++) {
        writeFileSync(gw.configPath, tables[i % 2]!);
        const o = (await gw.gw.reload('api')).outcome;
        outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
        reloadsDone++;
        await sleep(i % 10 === 0 ? 5 : 1);
      }
      answeredDuringReloads = replies.length;
    })();

    const client = async () => {
      while (replies.length < MAX_REQUESTS && Date.now() < deadline && (reloadsDone < RELOADS || replies.length < MIN_REQUESTS)) {
        try {
          const r = await send(gw.port, `/n/${replies.length}`);
          replies.push({ status: r.status, body: r.body });
        } catch (err) {
          replies.push({ error: (err as Error).message });
        }
      }
    };
    await Promise.all([reloading, client(), client(), client(), client(), client()]);

    expect(reloadsDone).toBe(RELOADS);
    // The reloads really overlapped the traffic (not all done before the first answer).
    expect(answeredDuringReloads).toBeGreaterThanOrEqual(50);
    expect(Object.fromEntries(outcomes)).toEqual({ applied: RELOADS });
    expect(replies.length).toBeGreaterThanOrEqual(MIN_REQUESTS);
    const bad = replies.filter((r) => !('status' in r) || r.status !== 200 || (r.body !== 'a' && r.body !== 'b'));
    expect(bad.slice(0, 5)).toEqual([]);
    const bodies = new Set(replies.map((r) => ('body' in r ? r.body : '')));
    expect([...bodies].sort()).toEqual(['a', 'b']);
    // Retired pools are released once their last request finished: no pool keeps b's or a's sockets forever.
    expect(gw.gw.inFlightRequests).toBe(0);
  }, 15_000);
});

/** An upstream that reports which client socket (remote port) each request came on, and tracks open sockets. */
async function portReporter(name: string): Promise<{ server: Server; url: string; open: Set<Socket>; close(): Promise<void> }> {
  const open = new Set<Socket>();
  const server = createServer((req, res) => res.end(`${name}:${req.socket.remotePort}`));
  server.on('connection', (s: Socket) => {
    open.add(s);
    s.on('close', () => open.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    open,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('keep-alive pools across reloads', () => {
  let keep: Awaited<ReturnType<typeof portReporter>>;
  let other: Awaited<ReturnType<typeof portReporter>>;
  let gw: TestGateway;
  beforeAll(async () => {
    keep = await portReporter('keep');
    other = await portReporter('other');
  });
  afterAll(async () => {
    await gw?.stop();
    await keep?.close();
    await other?.close();
  });

  const table = (routes: string, upstreams = `keep: { url: ${keep.url} }\n  other: { url: ${other.url} }`) => `
admin: { port: 0 }
reload: { watch: false }
upstreams:
  ${upstreams}
routes:
  - { name: main, path: /, upstream: keep }
${routes}`;

  const upstreams = async () => json(await admin(gw, '/upstreams')).upstreams as Array<{ name: string; openConnections: number }>;

  test('an unrelated edit keeps the pool; a removed upstream releases it; a changed upstream gets a new one', async () => {
    gw = await startGateway(table('  - { name: side, path: /side, upstream: other }\n'));
    const first = (await send(gw.port, '/x')).body;
    expect(first).toMatch(/^keep:\d+$/);
    expect((await send(gw.port, '/side')).body).toMatch(/^other:\d+$/);
    await until(() => other.open.size === 1 && keep.open.size === 1, 2000);

    // Unrelated route edit: the keep-alive connection to `keep` is reused.
    writeFileSync(gw.configPath, table('  - { name: side, path: /side, upstream: other }\n  - { name: extra, path: /extra, upstream: other }\n'));
    expect((await gw.gw.reload('api')).outcome).toBe('applied');
    expect((await send(gw.port, '/y')).body).toBe(first);
    expect(keep.open.size).toBe(1);
    expect((await upstreams()).find((u) => u.name === 'keep')!.openConnections).toBe(1);

    // `other` leaves the table: its pooled connection is closed, and it is no longer listed.
    writeFileSync(gw.configPath, table('', `keep: { url: ${keep.url} }`));
    expect(await gw.gw.reload('api')).toMatchObject({ outcome: 'applied', changes: expect.arrayContaining(['upstream removed: other']) });
    await until(() => other.open.size === 0, 2000);
    expect((await upstreams()).map((u) => u.name)).toEqual(['keep']);
    expect((await send(gw.port, '/z')).body).toBe(first);

    // `keep` changes a setting: a new pool (new connection), and the old pool's idle connection is closed.
    writeFileSync(gw.configPath, table('', `keep: { url: ${keep.url}, timeoutMs: 7000 }`));
    expect((await gw.gw.reload('api')).outcome).toBe('applied');
    const second = (await send(gw.port, '/w')).body;
    expect(second).toMatch(/^keep:\d+$/);
    expect(second).not.toBe(first);
    await until(() => keep.open.size === 1, 2000);
  });
});

describe('SIGHUP', () => {
  test('a real process re-reads its file on SIGHUP (with file watching off)', async () => {
    const monolith = await named('monolith');
    const orders = await named('orders');
    const text = (extra: string) => `
reload: { watch: false }
upstreams:
  monolith: { url: ${monolith.url} }
  orders: { url: ${orders.url} }
routes:
  - { name: legacy, path: /, upstream: monolith }
${extra}`;
    const file = writeTable(text(''));
    let proc: GatewayProcess | undefined;
    try {
      proc = await spawnGateway(file);
      expect((await send(proc.port, '/api/orders/1')).body).toBe('monolith');
      writeFileSync(file, text('  - { name: orders, path: /api/orders, upstream: orders }\n'));
      await sleep(300);
      expect((await send(proc.port, '/api/orders/1')).body).toBe('monolith');
      proc.child.kill('SIGHUP');
      const port = proc.port;
      await eventually(async () => (await send(port, '/api/orders/1')).body === 'orders', 2000);
      expect((await send(port, '/else')).body).toBe('monolith');
      const p = proc;
      await until(() => /"trigger":"SIGHUP"[^\n]*route table applied/.test(p.output()), 2000);
      proc.child.kill('SIGTERM');
      expect(await proc.exited).toBe(0);
      proc = undefined;
    } finally {
      if (proc) {
        proc.child.kill('SIGKILL');
        await proc.exited;
      }
      await monolith.close();
      await orders.close();
    }
  });
});

describe('large tables', () => {
  const table = (url: string, n: number, marker: string) =>
    `reload: { watch: false }\nupstreams: { app: { url: ${url} } }\nroutes:\n` +
    Array.from({ length: n }, (_, i) => `  - { name: r${i}, path: /p${i}, exact: true, upstream: app }`).join('\n') +
    `\n  - { name: marker, path: /marker/${marker}, upstream: app }\n`;

  test('a table of thousands of routes arrives from the worker in parts, whole, at start and on reload', async () => {
    const up = await startUpstream();
    const gw = await startGateway(table(up.url, 2500, 'a'));
    try {
      expect(gw.gw.table.matcher.routes).toHaveLength(2501);
      for (const p of ['/p0', '/p999', '/p1000', '/p2499', '/marker/a']) expect((await send(gw.port, p)).status).toBe(200);
      expect((await send(gw.port, '/p2500')).status).toBe(404);

      writeFileSync(gw.configPath, table(up.url, 3200, 'b'));
      const outcome = await gw.gw.reload('api');
      expect(outcome).toMatchObject({ outcome: 'applied', changes: expect.arrayContaining([expect.stringContaining('r3199')]) });
      expect(gw.gw.table.matcher.routes).toHaveLength(3201);
      expect(gw.gw.table.matcher.routes.map((r) => r.name).slice(-3)).toEqual(['r3198', 'r3199', 'marker']);
      for (const p of ['/p0', '/p2500', '/p3199', '/marker/b']) expect((await send(gw.port, p)).status).toBe(200);
      expect((await send(gw.port, '/marker/a')).status).toBe(404);
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});
