import { mergeStates } from './merge';

describe('summing the workers\' admin answers', () => {
  test('counts add up, settings and quantiles take the largest, breaker states the worst, ratios are computed again, lists merge by name', () => {
    const a = [
      { name: 'app', urls: ['http://a'], timeoutMs: 3000, inFlight: 2, breaker: { enabled: true, state: 'closed', requests: 10, failures: 1 }, instances: [{ url: 'http://a', inFlight: 2, ejected: false }] },
      { name: 'only-a', inFlight: 1 },
    ];
    const b = [{ name: 'app', urls: ['http://a'], timeoutMs: 3000, inFlight: 3, breaker: { enabled: true, state: 'open', requests: 30, failures: 20 }, instances: [{ url: 'http://a', inFlight: 1, ejected: true }] }];
    expect(mergeStates([a, b])).toEqual([
      { name: 'app', urls: ['http://a'], timeoutMs: 3000, inFlight: 5, breaker: { enabled: true, state: 'open', requests: 40, failures: 21 }, instances: [{ url: 'http://a', inFlight: 3, ejected: true }] },
      { name: 'only-a', inFlight: 1 },
    ]);
    const c1 = { route: 'r', percent: 20, effectivePercent: 20, rolledBack: { reason: 'x', requests: 9 }, health: { canary: { requests: 4, failures: 4, errorPercent: 100, p95Ms: 10 } } };
    const c2 = { route: 'r', percent: 20, effectivePercent: 20, rolledBack: { reason: 'x', requests: 9 }, health: { canary: { requests: 6, failures: 0, errorPercent: 0, p95Ms: 30 } } };
    // A decision both hold is taken once (not 18 requests); the health window is summed and its error rate computed again.
    expect(mergeStates([[c1], [c2]])).toEqual([{ route: 'r', percent: 20, effectivePercent: 20, rolledBack: { reason: 'x', requests: 9 }, health: { canary: { requests: 10, failures: 4, errorPercent: 40, p95Ms: 30 } } }]);
    const s1 = { route: 's', match: 3, mismatch: 1, mismatchPercent: 25, fields: [{ field: 'body.a', count: 1 }] };
    const s2 = { route: 's', match: 0, mismatch: 4, mismatchPercent: 100, fields: [{ field: 'body.a', count: 2 }, { field: 'status', count: 2 }] };
    expect(mergeStates([[s1], [s2]])).toEqual([{ route: 's', match: 3, mismatch: 5, mismatchPercent: 62.5, fields: [{ field: 'body.a', count: 3 }, { field: 'status', count: 2 }] }]);
  });
});
