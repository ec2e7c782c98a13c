/**
 * diffTables/summarize on real tables (parsed by the loader), and the
 * `strangler diff` CLI run as a real process (dist/, built by the jest globalSetup).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadTableText } from '../config/load';
import type { RouteTableConfig } from '../config/schema';
import { diffTables, summarize } from './diff';

function table(yaml: string): RouteTableConfig {
  const r = loadTableText(yaml, 'test.yaml', {});
  if (!r.ok) throw new Error(`fixture is invalid: ${JSON.stringify(r.problems)}`);
  return r.table.config;
}

const BASE = `
upstreams:
  monolith: { url: http://127.0.0.1:3000 }
  orders: { url: http://127.0.0.1:4002 }
  users: { url: http://127.0.0.1:4001 }
routes:
  - { name: users, path: /api/users, upstream: users }
  - { name: legacy, path: /, upstream: monolith }
`;

const WITH_ORDERS = `
upstreams:
  monolith: { url: http://127.0.0.1:3000 }
  orders: { url: http://127.0.0.1:4002 }
  users: { url: http://127.0.0.1:4001 }
routes:
  - { name: users, path: /api/users, upstream: users }
  - { name: orders, path: /api/orders, upstream: orders }
  - { name: legacy, path: /, upstream: monolith }
`;

describe('diffTables / summarize', () => {
  test('a route carved out of / is a destination change and an added route', () => {
    const d = diffTables(table(BASE), table(WITH_ORDERS));
    expect(d.empty).toBe(false);
    expect(d.routesAdded).toEqual([{ name: 'orders', path: '/api/orders', upstream: 'orders' }]);
    expect(d.destinationsChanged).toEqual([{ path: '/api/orders', from: 'monolith', to: 'orders' }]);
    expect(d.routesRemoved).toEqual([]);
    expect(d.restartRequired).toEqual([]);
    expect(summarize(d)).toEqual(['/api/orders: monolith -> orders', 'route added: orders (/api/orders -> orders)']);
  });

  test('a removed route returns its path to the broader route', () => {
    const lines = summarize(diffTables(table(WITH_ORDERS), table(BASE)));
    expect(lines).toEqual(['/api/orders: orders -> monolith', 'route removed: orders (/api/orders -> orders)']);
  });

  test('removing the only route for a path leaves it with no route', () => {
    const before = table(`
upstreams: { a: { url: http://127.0.0.1:1 } }
routes: [ { name: x, path: /x, upstream: a }, { name: y, path: /y, upstream: a } ]
`);
    const after = table(`
upstreams: { a: { url: http://127.0.0.1:1 } }
routes: [ { name: y, path: /y, upstream: a } ]
`);
    expect(summarize(diffTables(before, after))).toEqual(['/x: a -> (no route: 404)', 'route removed: x (/x -> a)']);
  });

  test('a re-pointed route (same name, new upstream) is one destination line, not a field change', () => {
    const before = table(WITH_ORDERS);
    const after = table(WITH_ORDERS.replace('{ name: orders, path: /api/orders, upstream: orders }', '{ name: orders, path: /api/orders, upstream: monolith }'));
    const d = diffTables(before, after);
    expect(d.routesChanged).toEqual([]);
    expect(summarize(d)).toEqual(['/api/orders: orders -> monolith']);
  });

  test('a retired page and a template route: destinations in words, template routes compared by their own route', () => {
    const before = table(`${BASE}  - { name: fax, path: /fax, upstream: monolith }\n  - { name: byId, path: "/api/orders/{id}", upstream: monolith }\n`);
    const after = table(`${BASE}  - { name: fax, path: /fax, respond: { status: 410 } }\n  - { name: byId, path: "/api/orders/{id}", upstream: orders, rewrite: "/orders/{id}" }\n`);
    const lines = summarize(diffTables(before, after));
    expect(lines).toEqual(expect.arrayContaining(['/fax: monolith -> respond 410', '/api/orders/{id}: monolith -> orders', 'route changed: byId (rewrite)']));
  });

  test('other route settings are reported by field name', () => {
    const after = table(BASE.replace('{ name: users, path: /api/users, upstream: users }', '{ name: users, path: /api/users, upstream: users, stripPrefix: /api, methods: [GET] }'));
    const lines = summarize(diffTables(table(BASE), after));
    expect(lines).toContain('route changed: users (methods, stripPrefix)');
  });

  test('an upstream URL change is one line with both URLs', () => {
    const before = table(`
upstreams: { users: { url: http://a } }
routes: [ { name: users, path: /, upstream: users } ]
`);
    const after = table(`
upstreams: { users: { url: http://b } }
routes: [ { name: users, path: /, upstream: users } ]
`);
    const d = diffTables(before, after);
    expect(d.upstreamUrlsChanged).toEqual([{ name: 'users', from: 'http://a', to: 'http://b' }]);
    expect(summarize(d)).toEqual(['upstream users: http://a -> http://b']);
  });

  test('upstreams added and removed, other upstream settings by field', () => {
    const before = table(`
upstreams: { a: { url: http://127.0.0.1:1 }, old: { url: http://127.0.0.1:2 } }
routes: [ { name: r, path: /, upstream: a } ]
`);
    const after = table(`
upstreams: { a: { url: http://127.0.0.1:1, timeoutMs: 500 }, fresh: { url: http://127.0.0.1:3 } }
routes: [ { name: r, path: /, upstream: a } ]
`);
    expect(summarize(diffTables(before, after))).toEqual(['upstream added: fresh', 'upstream removed: old', 'upstream changed: a (timeoutMs)']);
  });

  test('server settings are flagged as restart-only; an admin token change is never echoed', () => {
    const before = table(`${BASE}\nadmin: { token: first-token-value }\n`);
    const after = table(`${BASE}\nserver: { port: 9999 }\nadmin: { token: second-token-value }\n`);
    const lines = summarize(diffTables(before, after));
    expect(lines).toEqual(['server.port changed: takes effect on restart']);
    expect(lines.join('\n')).not.toMatch(/token-value/);
  });

  test('no change, or only formatting and comments, is empty', () => {
    const d = diffTables(table(BASE), table(BASE));
    expect(d.empty).toBe(true);
    expect(summarize(d)).toEqual([]);
    const reformatted = `# a comment
upstreams:
  users: { url: http://127.0.0.1:4001 }
  orders: { url: http://127.0.0.1:4002 }
  monolith:
    url: http://127.0.0.1:3000
routes:
  - name: legacy
    path: /
    upstream: monolith
  - { name: users, path: /api/users, upstream: users }
`;
    expect(summarize(diffTables(table(BASE), table(reformatted)))).toEqual([]);
  });
});

describe('strangler diff (CLI)', () => {
  const ROOT = resolve(__dirname, '..', '..');
  const CLI = join(ROOT, 'dist', 'src', 'cli', 'index.js');
  let dir: string;
  let n = 0;
  const file = (text: string) => {
    const f = join(dir, `t${++n}.yaml`);
    writeFileSync(f, text);
    return f;
  };
  const run = (...args: string[]) => {
    const r = spawnSync(process.execPath, [CLI, 'diff', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
    if (r.error) throw r.error;
    return { status: r.status, lines: r.stdout.split('\n').filter((l) => l !== ''), stderr: r.stderr };
  };

  beforeAll(() => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
    dir = mkdtempSync(join(tmpdir(), 'strangler-diff-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('prints one line per change and exits 0', () => {
    const r = run(file(BASE), file(WITH_ORDERS));
    expect(r.status).toBe(0);
    expect(r.lines).toEqual(['/api/orders: monolith -> orders', 'route added: orders (/api/orders -> orders)']);
  });

  test('an invalid NEW prints FILE:LINE:COL problems and exits 1', () => {
    const bad = file(WITH_ORDERS.replace('upstream: orders }', 'upstream: ordrs }'));
    const r = run(file(BASE), bad);
    expect(r.status).toBe(1);
    expect(r.lines.length).toBeGreaterThan(0);
    for (const l of r.lines) expect(l.startsWith(`${bad}:`)).toBe(true);
    // The fixture starts with a newline: routes[1] is on line 8, its upstream value at column 50.
    expect(r.lines).toEqual([`${bad}:8:50 routes[1] (orders): unknown upstream "ordrs" (did you mean "orders"?); declared: monolith, orders, users`]);
  });

  test('a YAML syntax error in NEW is located too', () => {
    const bad = file('upstreams:\n  a: { url: http://x\nroutes: []\n');
    const r = run(file(BASE), bad);
    expect(r.status).toBe(1);
    expect(r.lines[0]).toMatch(new RegExp(`^${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+ YAML: `));
  });

  test('identical tables print "no changes"', () => {
    const r = run(file(BASE), file(BASE));
    expect(r.status).toBe(0);
    expect(r.lines).toEqual(['no changes']);
  });

  test('a missing argument is a usage error', () => {
    const r = run(file(BASE));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/OLD and NEW/);
  });
});
