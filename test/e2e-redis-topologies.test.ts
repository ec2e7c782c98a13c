/**
 * state.redis.url as a list: Redis Sentinel (the client asks the sentinels
 * for the master) and Redis Cluster (a real one-node cluster: the client
 * follows the slot map, and every multi-key script must keep its keys in one
 * slot). Two replicas share a rate limit through each; through the cluster,
 * a table is also pushed (CLI with --config) and loaded with source: redis.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from './helpers/process';
import { TestRedis, TestSentinel } from './helpers/redis';
import { send, startGateway, startUpstream, until, type TestGateway, type Upstream } from './helpers/servers';

jest.setTimeout(30_000);

async function limitHolds(a: TestGateway, b: TestGateway): Promise<number> {
  let allowed = 0;
  for (let i = 0; i < 60; i++) if ((await send((i % 2 ? a : b).port, '/limited')).status === 200) allowed++;
  return allowed;
}

const routes = (up: Upstream) => `upstreams: { app: { url: ${up.url} } }
routes:
  - { name: limited, path: /limited, upstream: app, rateLimit: { key: route, limit: 20, windowMs: 60000 } }
`;

describe('a Redis that does not answer', () => {
  test('pull and push against an unreachable cluster fail within seconds instead of waiting forever', async () => {
    const { closedPort } = await import('./helpers/servers');
    const dir = mkdtempSync(join(tmpdir(), 'strangler-nocluster-'));
    const local = join(dir, 'local.yaml');
    writeFileSync(local, `source: redis\nstate: { redis: { url: ["redis://127.0.0.1:${await closedPort()}"] } }\n`);
    const started = Date.now();
    const pull = spawnSync(process.execPath, [CLI, 'pull', '--config', local], { encoding: 'utf8', env: { PATH: process.env.PATH }, timeout: 20_000 });
    expect(pull.status).not.toBe(0);
    expect(pull.signal).toBeNull();
    expect(pull.stderr).toMatch(/Redis did not answer within 3000 ms/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('through Redis Sentinel', () => {
  const master = new TestRedis();
  const sentinel = new TestSentinel(master);
  test('the replicas find the master through the sentinels and share a rate limit there', async () => {
    await master.start();
    await sentinel.start();
    const up = await startUpstream();
    const table = `state: { redis: { url: ["${sentinel.url}"], sentinelName: mymaster, keyPrefix: "s:${process.pid}:" } }\n${routes(up)}`;
    const a = await startGateway(table);
    const b = await startGateway(table);
    try {
      await until(() => a.gw.sharedStatus()?.redis === 'connected' && b.gw.sharedStatus()?.redis === 'connected', 8000);
      const before = (await master.calls('evalsha')) + (await master.calls('eval'));
      const allowed = await limitHolds(a, b);
      expect(allowed).toBeGreaterThanOrEqual(20);
      expect(allowed).toBeLessThanOrEqual(22);
      // The leases were taken on the master the sentinels named.
      expect((await master.calls('evalsha')) + (await master.calls('eval'))).toBeGreaterThan(before);
    } finally {
      await a.stop();
      await b.stop();
      await up.close();
      await sentinel.stop();
      await master.stop();
    }
  });
});

describe('through Redis Cluster', () => {
  const node = new TestRedis({ cluster: true });
  test('the replicas share a rate limit; a table pushed with --config is loaded by a replica with source: redis', async () => {
    await node.start();
    const up = await startUpstream();
    const prefix = `c:${process.pid}:`;
    const state = `state: { redis: { url: ["redis://127.0.0.1:${node.port}"], keyPrefix: "${prefix}" } }\n`;
    const a = await startGateway(state + routes(up));
    const b = await startGateway(state + routes(up));
    const dir = mkdtempSync(join(tmpdir(), 'strangler-cluster-'));
    let c: TestGateway | undefined;
    try {
      await until(() => a.gw.sharedStatus()?.redis === 'connected' && b.gw.sharedStatus()?.redis === 'connected', 8000);
      const allowed = await limitHolds(a, b);
      expect(allowed).toBeGreaterThanOrEqual(20);
      expect(allowed).toBeLessThanOrEqual(22);
      // The publishing script touches three keys: in a cluster they must share a slot.
      const local = join(dir, 'local.yaml');
      writeFileSync(local, `source: redis\n${state}`);
      const shared = join(dir, 'shared.yaml');
      writeFileSync(shared, routes(up));
      const push = spawnSync(process.execPath, [CLI, 'push', shared, '--config', local], { encoding: 'utf8', env: { PATH: process.env.PATH }, timeout: 15_000 });
      expect(push.stdout + push.stderr).toMatch(/^published version [0-9a-f]+ to redis:c:\d+:\{table\}\n$/);
      expect(push.status).toBe(0);
      c = await startGateway(`source: redis\n${state}`);
      expect(c.gw.table.config.routes.map((r) => r.name)).toEqual(['limited']);
      const pull = spawnSync(process.execPath, [CLI, 'pull', '--config', local], { encoding: 'utf8', env: { PATH: process.env.PATH }, timeout: 15_000 });
      expect(pull.stdout).toMatch(/^# strangler-version: [0-9a-f]+\nupstreams:/);
    } finally {
      await c?.stop();
      await a.stop();
      await b.stop();
      await up.close();
      await node.stop();
    }
  });
});
