import { gcra, LeaseBank, LocalLimiter } from './gcra';

describe('GCRA', () => {
  test('the whole allowance may be used at once, then one more per interval; burst adds on top', () => {
    const l = new LocalLimiter({ limit: 10, windowMs: 1000, burst: 0 });
    const t0 = 1_000_000;
    const first = Array.from({ length: 12 }, () => l.take('a', t0));
    expect(first.filter((d) => d.allowed)).toHaveLength(10);
    expect(first[0]).toMatchObject({ allowed: true, remaining: 9 });
    expect(first[9]).toMatchObject({ allowed: true, remaining: 0 });
    expect(first[10]).toMatchObject({ allowed: false, remaining: 0, resetSeconds: 1 });
    // 100 ms later one more is allowed (1000 ms / 10), not two.
    expect(l.take('a', t0 + 100).allowed).toBe(true);
    expect(l.take('a', t0 + 100).allowed).toBe(false);
    // Other keys are apart.
    expect(l.take('b', t0).allowed).toBe(true);
    const burst = new LocalLimiter({ limit: 10, windowMs: 1000, burst: 5 });
    expect(Array.from({ length: 20 }, () => burst.take('a', t0)).filter((d) => d.allowed)).toHaveLength(15);
  });

  test('over a long run the rate is the limit', () => {
    const l = new LocalLimiter({ limit: 100, windowMs: 60_000, burst: 0 });
    let allowed = 0;
    for (let ms = 0; ms < 600_000; ms += 50) if (l.take('k', ms).allowed) allowed++;
    // 10 windows of 100, plus the first burst.
    expect(allowed).toBeGreaterThanOrEqual(1000);
    expect(allowed).toBeLessThanOrEqual(1100);
  });

  test('a refusal does not move the TAT; Retry-After counts to the next allowed request', () => {
    const p = { limit: 2, windowMs: 10_000, burst: 0 };
    let tat = 0;
    for (let i = 0; i < 2; i++) tat = gcra(p, tat, 0).tat;
    const refused = gcra(p, tat, 0);
    expect(refused.decision).toEqual({ allowed: false, remaining: 0, resetSeconds: 5 });
    expect(refused.tat).toBe(tat);
  });

  test('leases: as many as fit are granted at once, never more than the allowance over a window', () => {
    const bank = new LeaseBank();
    const p = { limit: 100, windowMs: 1000, burst: 0 };
    const t0 = 5_000_000;
    const grants = Array.from({ length: 7 }, () => bank.lease('k', p, 20, t0));
    expect(grants.map((g) => g.granted)).toEqual([20, 20, 20, 20, 20, 0, 0]);
    expect(grants[0]).toMatchObject({ remaining: 80 });
    expect(grants[5]!.resetSeconds).toBeGreaterThanOrEqual(1);
    // 100 ms later 10 more have come back (one per 10 ms), and a lease takes only those.
    expect(bank.lease('k', p, 20, t0 + 100)).toMatchObject({ granted: 10, remaining: 0 });
    // The same arithmetic as one request at a time.
    const l = new LocalLimiter(p);
    expect(Array.from({ length: 120 }, () => l.take('k', t0)).filter((d) => d.allowed)).toHaveLength(100);
  });
});
