import { MigrationInsight } from './insight';
import { HyperLogLog, SpaceSaving, type Counted } from './sketches';

const HOUR = 3_600_000;
const MIN = 60_000;
/** A fixed clock: 2026-12-01 09:58:00 UTC. */
const T0 = Date.UTC(2026, 11, 1, 9, 58);

describe('migration insight', () => {
  test('share of requests by the side that answered, overall and per route; errors counted on their side', () => {
    const m = new MigrationInsight({ legacy: ['monolith'], templates: [] });
    // A canary route: 3 answers from the monolith, 1 from the new service (the canary side), 1 of them failed.
    for (let i = 0; i < 3; i++) m.record('orders', 'monolith', 'GET', `/orders/${i}`, 200, 5, undefined, T0);
    m.record('orders', 'orders-svc', 'GET', '/orders/9', 502, 5, undefined, T0);
    // A fallback: the new service failed over, the monolith answered: counted as legacy.
    m.record('users', 'monolith', 'GET', '/users/1', 200, 5, undefined, T0);
    m.record('users', 'users-svc', 'GET', '/users/2', 200, 5, undefined, T0);
    const r = m.report(T0);
    expect(r.now).toMatchObject({ legacy: 4, new: 2, errors: 1, legacyPercent: 66.67 });
    expect(r.routes.orders!.now).toMatchObject({ legacy: 3, new: 1, errors: 1, legacyPercent: 75 });
    expect(r.routes.users!.now).toMatchObject({ legacy: 1, new: 1, legacyPercent: 50 });
    expect(r.last24h).toMatchObject({ legacy: 4, new: 2 });
    expect(m.bySide).toEqual({ legacy: 4, new: 2 });
    // Only legacy answers go into the inventory.
    expect(m.inventoryReport().templates.map((t) => `${t.method} ${t.template} ${t.count}`)).toEqual(['GET /orders/{int} 3', 'GET /users/{int} 1']);
  });

  test('minute and hour buckets across an hour boundary, on a fake clock: "now" is the last five minutes, hours stay apart, 24 h later they are gone', () => {
    const m = new MigrationInsight({ legacy: ['monolith'], templates: [] });
    m.record('r', 'monolith', 'GET', '/a', 200, 1, undefined, T0); // 09:58
    m.record('r', 'new', 'GET', '/a', 200, 1, undefined, T0 + 1 * MIN); // 09:59
    m.record('r', 'new', 'GET', '/a', 200, 1, undefined, T0 + 3 * MIN); // 10:01
    m.record('r', 'new', 'GET', '/a', 200, 1, undefined, T0 + 3 * MIN + 30_000);
    let r = m.report(T0 + 3 * MIN + 30_000);
    expect(r.now).toMatchObject({ legacy: 1, new: 3 });
    const hours = r.hourly.slice(-2).map((h) => [h.hour, h.legacy, h.new]);
    expect(hours).toEqual([
      ['2026-12-01T09:00:00.000Z', 1, 1],
      ['2026-12-01T10:00:00.000Z', 0, 2],
    ]);
    expect(r.hourly).toHaveLength(24);
    // Six minutes on, 09:58 has left "now"; the hours still hold everything.
    r = m.report(T0 + 7 * MIN);
    expect(r.now).toMatchObject({ legacy: 0, new: 2 });
    expect(r.last24h).toMatchObject({ legacy: 1, new: 3 });
    // A day later the ring has come round: a new request there does not see yesterday's counts.
    m.record('r', 'monolith', 'GET', '/a', 200, 1, undefined, T0 + 24 * HOUR);
    r = m.report(T0 + 24 * HOUR);
    expect(r.last24h).toMatchObject({ legacy: 1, new: 2 });
    expect(r.routes.r!.now).toMatchObject({ legacy: 1, new: 0 });
    r = m.report(T0 + 26 * HOUR);
    expect(r.last24h).toMatchObject({ legacy: 1, new: 0 });
  });

  test('distinct users per side are estimated, overall and per route', () => {
    const m = new MigrationInsight({ legacy: ['monolith'], templates: [] });
    for (let u = 0; u < 300; u++) {
      for (let k = 0; k < 3; k++) m.record('r', u < 200 ? 'monolith' : 'new', 'GET', '/a', 200, 1, `user-${u}`, T0);
    }
    const r = m.report(T0);
    expect(Math.abs(r.last24h.users.legacy - 200)).toBeLessThanOrEqual(10);
    expect(Math.abs(r.last24h.users.new - 100)).toBeLessThanOrEqual(6);
    expect(Math.abs(r.routes.r!.users.legacy - 200)).toBeLessThanOrEqual(16);
    // Into the next hour the previous hour's users still count for the route; two hours on they do not.
    expect(Math.abs(m.report(T0 + HOUR).routes.r!.users.legacy - 200)).toBeLessThanOrEqual(16);
    expect(m.report(T0 + 3 * HOUR).routes.r!.users).toEqual({ legacy: 0, new: 0 });
  });

  test('the inventory keeps 1,000 templates at most; what falls out is counted as other; p95 and status classes per template', () => {
    const m = new MigrationInsight({ legacy: ['monolith'], templates: ['/files/{name}'] });
    for (let i = 0; i < 50; i++) m.record('r', 'monolith', 'GET', `/orders/${i}`, i < 5 ? 500 : 200, i < 48 ? 10 : 900, undefined, T0);
    for (let i = 0; i < 1500; i++) m.record('r', 'monolith', 'POST', `/files/f${i}`, 201, 1, undefined, T0);
    for (let i = 0; i < 2000; i++) m.record('r', 'monolith', 'GET', `/page-${i}`, 200, 1, undefined, T0);
    const inv = m.inventoryReport();
    expect(inv.tracked).toBe(1000);
    expect(inv.total).toBe(3550);
    const top = inv.templates.slice(0, 2);
    expect(top.map((t) => `${t.method} ${t.template}`)).toEqual(['POST /files/{name}', 'GET /orders/{int}']);
    expect(top[0]).toMatchObject({ count: 1500, maxOvercount: 0 });
    expect(top[1]).toMatchObject({ count: 50, statuses: { '2xx': 45, '5xx': 5 } });
    expect(top[1]!.p95Ms).toBeGreaterThanOrEqual(10);
    expect(top[1]!.p95Ms).toBeLessThan(20);
    // 2,000 one-off pages, 998 places left: about a thousand of them are not attributed.
    expect(inv.other).toBeGreaterThanOrEqual(1000);
    expect(inv.other).toBeLessThanOrEqual(1002);
  });
});

describe('sketches', () => {
  test('space-saving keeps every key counted more than total/capacity times', () => {
    interface E extends Counted {}
    const s = new SpaceSaving<E>(10, (key) => ({ key, count: 0, error: 0, heapIndex: 0 }), () => undefined);
    for (let round = 0; round < 200; round++) {
      s.add('hot-a');
      if (round % 2 === 0) s.add('hot-b');
      s.add(`cold-${round}`);
    }
    const keys = s.sorted().map((e) => e.key);
    expect(keys.slice(0, 2)).toEqual(['hot-a', 'hot-b']);
    expect(s.get('hot-a')!.count - s.get('hot-a')!.error).toBe(200);
    expect(s.size).toBe(10);
  });

  test('HyperLogLog counts 10,000 distinct values within 5%', () => {
    const h = new HyperLogLog(10);
    for (let i = 0; i < 10_000; i++) {
      h.add(`u${i}`);
      h.add(`u${i}`);
    }
    expect(Math.abs(h.count() - 10_000)).toBeLessThan(500);
  });

  test('snapshots of two processes summed give the report of one process that saw all the traffic (users seen by both count once)', () => {
    const settings = { legacy: ['monolith'], templates: ['/reports/{name}/pdf'] };
    const whole = new MigrationInsight(settings, 50);
    const a = new MigrationInsight(settings, 50);
    const b = new MigrationInsight(settings, 50);
    // Three hours of traffic over the two processes; each one's last request at its own time (one is a minute behind).
    let seed = 7;
    const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const paths = ['/orders/1', '/orders/22', '/users/a3f9c2d4-0b1e-4c5a-9d7e-1f2a3b4c5d6e', '/reports/q3/pdf', '/search', '/users/7'];
    const upstreams = ['monolith', 'monolith', 'users-svc', 'orders-svc'];
    for (let i = 0; i < 3000; i++) {
      const at = T0 - 3 * HOUR + i * 3_600 + rand(1000);
      const args = [['orders', 'users', 'reports'][rand(3)]!, upstreams[rand(4)]!, rand(5) === 0 ? 'POST' : 'GET', paths[rand(paths.length)]!, rand(10) === 0 ? 503 : 200, 1 + rand(400), `user-${rand(80)}`, at] as const;
      whole.record(...args);
      (rand(2) === 0 ? a : b).record(...args);
    }
    const now = T0 + 2 * MIN;
    const merged = MigrationInsight.merged(settings, 50, [a.snapshot(), b.snapshot()]);
    expect(merged.report(now)).toEqual(whole.report(now));
    expect(merged.inventoryReport()).toEqual(whole.inventoryReport());
    expect(merged.bySide).toEqual(whole.bySide);
    // Users are not summed: the 80 users on both sides are counted once (within HyperLogLog's error).
    const users = merged.report(now).last24h.users;
    expect(users.legacy + users.new).toBeLessThan(2 * 80);
    expect(merged.report(now).routes.orders!.users).toEqual(whole.report(now).routes.orders!.users);
  });
});
