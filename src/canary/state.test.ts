import { CanarySchema } from '../config/schema';
import { bucketOf, CanaryState, type CanaryEvents } from './state';

function canary(over: Record<string, unknown>, clock?: () => number, events?: Partial<CanaryEvents>) {
  const cfg = CanarySchema.parse({ upstream: 'orders', percent: 10, ...over });
  return new CanaryState('orders', 'monolith', cfg, { rolledBack: () => undefined, stepped: () => undefined, ...events }, clock);
}

const users = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

describe('canary assignment', () => {
  test('10,000 distinct users at 10%: the observed share is within ±1.5 points', () => {
    const c = canary({ percent: 10 });
    const share = users.filter((u) => c.decide({}, u, undefined).side === 'canary').length / users.length;
    expect(Math.abs(share * 100 - 10)).toBeLessThanOrEqual(1.5);
  });

  test.each([1, 25, 50, 99.5])('the share converges at %s%% too', (percent) => {
    const c = canary({ percent });
    const share = users.filter((u) => c.decide({}, u, undefined).side === 'canary').length / users.length;
    expect(Math.abs(share * 100 - percent)).toBeLessThanOrEqual(1.5);
  });

  test('each user keeps their side across 20 requests', () => {
    const c = canary({ percent: 30 });
    for (const u of users.slice(0, 500)) {
      const first = c.decide({}, u, undefined).side;
      for (let i = 0; i < 19; i++) expect(c.decide({}, u, undefined).side).toBe(first);
    }
  });

  test('raising 10% -> 30% moves nobody from canary back to primary', () => {
    const at10 = canary({ percent: 10 });
    const at30 = canary({ percent: 30 });
    let moved = 0;
    for (const u of users) {
      const before = at10.decide({}, u, undefined).side;
      const after = at30.decide({}, u, undefined).side;
      expect(before === 'canary' && after === 'primary').toBe(false);
      if (before === 'primary' && after === 'canary') moved++;
    }
    expect(moved).toBeGreaterThan(1500);
  });

  test('routes in the same cohort agree; different routes pick different users', () => {
    const cfg = (cohort?: string) => CanarySchema.parse({ upstream: 'x', percent: 20, ...(cohort ? { cohort } : {}) });
    const noop = { rolledBack: () => undefined, stepped: () => undefined };
    const a = new CanaryState('checkout-cart', 'm', cfg('checkout'), noop);
    const b = new CanaryState('checkout-pay', 'm', cfg('checkout'), noop);
    const c = new CanaryState('profile', 'm', cfg(), noop);
    let disagree = 0;
    for (const u of users) {
      expect(a.decide({}, u, undefined).side).toBe(b.decide({}, u, undefined).side);
      if (a.decide({}, u, undefined).side !== c.decide({}, u, undefined).side) disagree++;
    }
    expect(disagree).toBeGreaterThan(1000);
  });

  test('the bucket is a deterministic hash into 10,000 buckets', () => {
    expect(bucketOf('orders', 'alice')).toBe(bucketOf('orders', 'alice'));
    expect(bucketOf('orders', 'alice')).not.toBe(bucketOf('billing', 'alice'));
    for (const u of users.slice(0, 100)) expect(bucketOf('s', u)).toBeGreaterThanOrEqual(0), expect(bucketOf('s', u)).toBeLessThan(10_000);
  });

  test('sticky: user falls back to the cookie, and assigns one when missing', () => {
    const c = canary({ sticky: 'user', percent: 50 });
    const d = c.decide({}, undefined, undefined);
    expect(d.setCookie).toMatch(/^strangler_sticky=[0-9a-f-]{36}; Path=\/; Max-Age=31536000; HttpOnly; SameSite=Lax$/);
    const key = /=([^;]+)/.exec(d.setCookie!)![1]!;
    const again = c.decide({ cookie: `a=1; strangler_sticky=${key}` }, undefined, undefined);
    expect(again.setCookie).toBeUndefined();
    expect(again.bucket).toBe(bucketOf('orders', key));
  });

  test('sticky: header hashes that header; no header -> primary', () => {
    const c = canary({ sticky: 'header:X-Tenant', percent: 50 });
    const d = c.decide({ 'x-tenant': 'acme' }, 'someone', undefined);
    expect(d.bucket).toBe(bucketOf('orders', 'acme'));
    expect(c.decide({}, 'someone', undefined)).toMatchObject({ side: 'primary', reason: 'no-key' });
  });

  test('overrides: only when allowed, and only for the configured roles', () => {
    const off = canary({ percent: 0 });
    expect(off.decide({ 'x-canary': 'always' }, 'u', undefined).side).toBe('primary');
    const on = canary({ percent: 0, allowOverride: true });
    expect(on.decide({ 'x-canary': 'always' }, 'u', undefined)).toMatchObject({ side: 'canary', reason: 'override' });
    const all = canary({ percent: 100, allowOverride: true });
    expect(all.decide({ 'x-canary': 'never' }, 'u', undefined).side).toBe('primary');
    const roles = canary({ percent: 0, allowOverride: true, overrideRoles: ['tester'] });
    expect(roles.decide({ 'x-canary': 'always' }, 'u', ['user']).side).toBe('primary');
    expect(roles.decide({ 'x-canary': 'always' }, 'u', ['tester']).side).toBe('canary');
  });
});

describe('rollback', () => {
  test('after minRequests with too many failures the share drops to 0 until reset', () => {
    const rolled: unknown[] = [];
    const c = canary({ percent: 100, rollback: { maxErrorPercent: 5, minRequests: 20, windowMs: 60000 } }, undefined, { rolledBack: (_r, d) => rolled.push(d) });
    for (let i = 0; i < 18; i++) c.record('canary', false, 5);
    c.record('canary', true, 5);
    expect(c.rolledBack).toBeUndefined(); // 19 requests: below minRequests
    c.record('canary', true, 5);
    expect(c.rolledBack).toMatchObject({ errorPercent: 10, requests: 20 });
    expect(rolled).toHaveLength(1);
    expect(c.effectivePercent()).toBe(0);
    expect(c.decide({}, 'u', undefined)).toMatchObject({ side: 'primary', reason: 'rolled-back' });
    c.reset();
    expect(c.effectivePercent()).toBe(100);
  });

  test('a reset starts the canary\'s window empty: the failures that rolled it back do not roll it back again', () => {
    const c = canary({ percent: 100, rollback: { maxErrorPercent: 5, minRequests: 20, windowMs: 60000 } });
    for (let i = 0; i < 20; i++) c.record('canary', true, 5);
    expect(c.rolledBack).toBeDefined();
    c.reset();
    c.record('canary', true, 5);
    expect(c.rolledBack).toBeUndefined();
    expect((c.describe().health as { canary: unknown }).canary).toMatchObject({ requests: 1, failures: 1 });
    for (let i = 0; i < 19; i++) c.record('canary', true, 5);
    expect(c.rolledBack).toMatchObject({ requests: 20 });
  });

  test('primary failures never roll the canary back', () => {
    const c = canary({ percent: 50, rollback: { maxErrorPercent: 5, minRequests: 5, windowMs: 60000 } });
    for (let i = 0; i < 50; i++) c.record('primary', true, 5);
    expect(c.rolledBack).toBeUndefined();
  });

  test('old failures leave the window', () => {
    let now = 1_000_000;
    const c = canary({ percent: 50, rollback: { maxErrorPercent: 5, minRequests: 10, windowMs: 10000 } }, () => now);
    for (let i = 0; i < 5; i++) c.record('canary', true, 5);
    now += 20_000;
    for (let i = 0; i < 200; i++) c.record('canary', false, 5);
    c.record('canary', true, 5);
    expect(c.rolledBack).toBeUndefined();
  });
});

describe('progressive ramp on a fake clock', () => {
  test('advances one step per interval while healthy, capped by percent; pauses on errors', () => {
    let now = 0;
    const steps: number[] = [];
    const c = canary({ percent: 50, steps: [1, 5, 25, 50, 100], stepEveryMs: 60000, rollback: { maxErrorPercent: 5, minRequests: 1000, windowMs: 120000 } }, () => now, { stepped: (_r, p) => steps.push(p) });
    expect(c.effectivePercent()).toBe(1);
    now += 59_999;
    expect(c.effectivePercent()).toBe(1);
    now += 1;
    expect(c.effectivePercent()).toBe(5);
    // Errors in the window: the next step waits.
    for (let i = 0; i < 10; i++) c.record('canary', true, 5);
    now += 60_000;
    expect(c.effectivePercent()).toBe(5);
    expect((c.describe().ramp as { paused: string }).paused).toMatch(/error rate/);
    // The window forgets the errors; the ramp resumes.
    now += 60_000;
    expect(c.effectivePercent()).toBe(25);
    now += 60_000;
    expect(c.effectivePercent()).toBe(50);
    now += 60_000;
    expect(c.effectivePercent()).toBe(50); // 100 is capped by the table's percent
    expect(steps).toEqual([5, 25, 50, 50]);
  });

  test('pauses while the canary is much slower than the primary', () => {
    let now = 0;
    const c = canary({ percent: 100, steps: [10, 20], stepEveryMs: 1000, maxLatencyFactor: 2, rollback: { maxErrorPercent: 50, minRequests: 1, windowMs: 5000 } }, () => now);
    for (let i = 0; i < 20; i++) {
      c.record('primary', false, 10);
      c.record('canary', false, 500);
    }
    now += 1000;
    expect(c.effectivePercent()).toBe(10);
    expect((c.describe().ramp as { paused: string }).paused).toMatch(/p95/);
  });
});

describe('the ramp judged on every process\'s windows (shared state)', () => {
  test('failures and slowness seen by another process hold this one\'s ramp; without them it steps', () => {
    let now = 0;
    const cfg = { percent: 100, steps: [10, 20, 50], stepEveryMs: 1000, maxLatencyFactor: 2, rollback: { maxErrorPercent: 5, minRequests: 1000, windowMs: 5000 } };
    const other = canary(cfg, () => now);
    const here = canary(cfg, () => now);
    here.remoteCounts = () => other.localCounts();
    const alone = canary(cfg, () => now);
    // Only the other process sees canary traffic, and it fails.
    for (let i = 0; i < 10; i++) other.record('canary', true, 5);
    now += 1000;
    expect(alone.effectivePercent()).toBe(20);
    expect(here.effectivePercent()).toBe(10);
    expect((here.describe().ramp as { paused: string }).paused).toMatch(/canary error rate 100% above 5%/);
    // Later: the other process's canary answers are healthy but slow against its primary answers.
    now += 10_000;
    for (let i = 0; i < 20; i++) {
      other.record('primary', false, 10);
      other.record('canary', false, 500);
    }
    now += 1000;
    here.effectivePercent();
    expect((here.describe().ramp as { paused: string }).paused).toMatch(/p95 500 ms is over 2x the primary's 10 ms/);
    // What is shared: both sides' windows, histograms included.
    expect(other.localCounts()).toMatchObject({ requests: 20, failures: 0, primaryRequests: 20, latency: expect.any(Array), primaryLatency: expect.any(Array) });
  });
});

describe('promotion gate on a fake clock', () => {
  test('the ramp waits for enough comparisons, then for few enough mismatches, then steps', () => {
    let now = 1_000_000;
    const agreement = { compared: 0, mismatch: 0 };
    const cfg = CanarySchema.parse({ upstream: 'orders', percent: 50, steps: [1, 5, 25], stepEveryMs: 60_000, gate: { maxMismatchPercent: 0.5, minCompared: 200 } });
    const c = new CanaryState('orders', 'monolith', cfg, { rolledBack: () => undefined, stepped: () => undefined }, () => now, () => agreement);
    expect(c.effectivePercent()).toBe(1);
    now += 60_000;
    expect(c.effectivePercent()).toBe(1);
    expect((c.describe().ramp as { paused: string }).paused).toBe('gate: 0 of 200 comparisons in the window');
    agreement.compared = 400;
    agreement.mismatch = 10;
    now += 60_000;
    expect(c.effectivePercent()).toBe(1);
    expect((c.describe().ramp as { paused: string }).paused).toBe('gate: 2.5% of 400 comparisons mismatch, above 0.5%');
    agreement.mismatch = 1;
    now += 60_000;
    expect(c.effectivePercent()).toBe(5);
    expect((c.describe().ramp as { paused: string | null }).paused).toBeNull();
  });
});
