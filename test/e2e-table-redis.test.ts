/**
 * source: redis with a real redis-server and the real CLI: `strangler push`
 * publishes a table (validated, compare-and-set on the version it was
 * pulled at), gateways whose local file says `source: redis` load it at
 * start and on each new version (pub/sub, and a version check every second
 * for a missed message); a stale push, a push with process-level keys and an
 * invalid push are refused and change nothing.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { CLI } from './helpers/process';
import { TestRedis } from './helpers/redis';
import { json, send, startGateway, startUpstream, until, type TestGateway, type Upstream } from './helpers/servers';

jest.setTimeout(30_000);

describe('the route table in Redis', () => {
  const redis = new TestRedis();
  const prefix = `test:${process.pid}:`;
  let a: Upstream;
  let b: Upstream;
  let gw: TestGateway;
  let gw2: TestGateway;
  let dir: string;
  const cli = (...args: string[]) => {
    const r = spawnSync(process.execPath, [CLI, ...args, '--redis', redis.url, '--prefix', prefix], { encoding: 'utf8', env: { PATH: process.env.PATH }, timeout: 15_000 });
    return { code: r.status, out: r.stdout + r.stderr };
  };
  const table = (upstream: string, extra = '') => `upstreams:
  a: { url: ${a.url} }
  b: { url: ${b.url} }
routes:
  - { name: api, path: /api, upstream: ${upstream} }
${extra}`;
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  beforeAll(async () => {
    await redis.start();
    a = await startUpstream((_req, res) => res.writeHead(200).end('a'));
    b = await startUpstream((_req, res) => res.writeHead(200).end('b'));
    dir = require('node:fs').mkdtempSync(join(require('node:os').tmpdir(), 'strangler-redis-table-'));
  });
  afterAll(async () => {
    await gw?.stop();
    await gw2?.stop();
    await Promise.all([a?.close(), b?.close()]);
    await redis.stop();
  });

  test('nothing published yet: a gateway with source: redis refuses to start, saying what to do; pull says so too', async () => {
    await expect(startGateway(`source: redis\nstate: { redis: { url: ${redis.url}, keyPrefix: "${prefix}" } }\n`)).rejects.toThrow(/no route table is published in Redis yet: publish one with `strangler push FILE`/);
    expect(cli('pull')).toMatchObject({ code: 1, out: expect.stringContaining('nothing is published') });
  });

  test('push publishes a table; replicas load it at start; pull prints it with its version', async () => {
    const pushed = cli('push', file('t1.yaml', table('a')));
    expect(pushed).toMatchObject({ code: 0, out: expect.stringMatching(/^published version [0-9a-f]+ to redis:test:\d+:\{table\}\n$/) });
    const local = `source: redis\nadmin: { port: 0 }\nstate: { redis: { url: ${redis.url}, keyPrefix: "${prefix}" } }\n`;
    gw = await startGateway(local);
    gw2 = await startGateway(local);
    expect((await send(gw.port, '/api')).body).toBe('a');
    expect((await send(gw2.port, '/api')).body).toBe('a');
    const pulled = cli('pull');
    expect(pulled.code).toBe(0);
    expect(pulled.out).toBe(`# strangler-version: ${/published version (\S+)/.exec(pushed.out)![1]}\n${table('a')}`);
  });

  test('a push based on the live version is published and reaches every replica within 2 s; a stale one is refused with what changed', async () => {
    const pulled = cli('pull').out;
    const edited = file('t2.yaml', pulled.replace('upstream: a', 'upstream: b'));
    const r = cli('push', edited);
    expect(r.code).toBe(0);
    await until(() => gw.gw.table.config.routes[0]!.upstream === 'b' && gw2.gw.table.config.routes[0]!.upstream === 'b', 2000);
    expect((await send(gw.port, '/api')).body).toBe('b');
    expect(json(await send(gw.gw.adminPort!, '/reloads')).reloads[0]).toMatchObject({ trigger: 'redis', outcome: 'applied', changes: expect.arrayContaining([expect.stringContaining('api')]) });
    // Someone else's edit, based on the version before: refused, exit 1, with what was published meanwhile.
    const stale = cli('push', file('t3.yaml', pulled.replace('routes:', 'routes:\n  - { name: other, path: /other, upstream: a }')));
    expect(stale.code).toBe(1);
    expect(stale.out).toMatch(/^refused: the live table is version \S+, not \S+: it changed since this file was pulled\.\npublished meanwhile:\n {2}.*api/);
    expect(gw.gw.table.config.routes.map((x) => x.name)).toEqual(['api']);
    // --base says which version an edit is based on when the file has no version line.
    const live = /# strangler-version: (\S+)/.exec(cli('pull').out)![1]!;
    expect(cli('push', file('t4.yaml', table('a')), '--base', live).code).toBe(0);
    await until(() => gw.gw.table.config.routes[0]!.upstream === 'a', 2000);
  });

  test('refused before publishing: process-level keys, an invalid table, a flow-style top level', async () => {
    const before = cli('pull').out;
    const version = /# strangler-version: (\S+)/.exec(before)![1]!;
    const withServer = cli('push', file('p1.yaml', `${table('b')}server: { port: 1 }\n`), '--base', version);
    expect(withServer).toMatchObject({ code: 1, out: expect.stringContaining('"server" is a process-level key') });
    const invalid = cli('push', file('p2.yaml', table('nowhere')), '--base', version);
    expect(invalid.code).toBe(1);
    expect(invalid.out).toMatch(/p2\.yaml:5:\d+ .*nowhere/);
    // With the version line a pulled file starts with, problems are still at the file's own lines.
    expect(cli('push', file('p4.yaml', `# strangler-version: ${version}\n${table('nowhere')}`)).out).toMatch(/p4\.yaml:6:\d+ .*nowhere/);
    const flow = cli('push', file('p3.yaml', `{ upstreams: { a: { url: ${a.url} } }, routes: [{ name: api, path: /api, upstream: a }] }\n`), '--base', version);
    expect(flow).toMatchObject({ code: 1, out: expect.stringContaining('block mapping') });
    expect(cli('pull').out).toBe(before);
  });

  test('a missed announcement is caught by the version check; an invalid published table keeps the old one serving, its problems located in Redis', async () => {
    const client = new Redis(redis.url);
    try {
      const { versionOf } = await import('../src/config/version');
      // Written without PUBLISH: only the version check sees it.
      const text = table('b');
      await client.hset(`${prefix}{table}`, 'version', versionOf(text), 'text', text);
      await until(() => gw.gw.table.config.routes[0]!.upstream === 'b', 2500);
      const bad = table('b').replace('path: /api', 'path: api');
      await client.hset(`${prefix}{table}`, 'version', versionOf(bad), 'text', bad);
      await until(() => gw.gw.lastReloadError !== undefined, 2500);
      expect(gw.gw.lastReloadError!.problems[0]).toMatchObject({ file: `redis:${prefix}{table}@${versionOf(bad)}`, line: 5 });
      expect((await send(gw.port, '/api')).body).toBe('b');
      // Written to Redis without strangler push, a process-level key is still refused (it would open an admin port).
      const sneaky = `${table('b')}admin: { port: 0, host: 0.0.0.0 }\n`;
      await client.hset(`${prefix}{table}`, 'version', versionOf(sneaky), 'text', sneaky);
      await until(() => gw.gw.reloads()[0]?.problems?.[0]?.includes('"admin" is a process-level key') === true, 2500);
      expect(gw.gw.reloads()[0]!.problems![0]).toMatch(new RegExp(`^redis:${prefix}\\{table\\}@${versionOf(sneaky)}:6:1 `));
      expect(gw.gw.table.config.admin?.host).not.toBe('0.0.0.0');
    } finally {
      client.disconnect();
    }
  });

  test('the console does not edit a table published in Redis (it is edited with strangler push)', async () => {
    const t = json(await send(gw.gw.adminPort!, '/table'));
    expect(t.allowEdit).toBe(false);
    expect(t.text).toContain('source: redis');
  });
});
