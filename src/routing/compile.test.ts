import { loadTableText } from '../config/load';
import type { RouteTableConfig } from '../config/schema';
import { hostForMatching, RouteMatcher, upstreamPathFor } from './compile';

/** Parses a route table the way the gateway does; fails the test with the problems if it does not load. */
function table(yaml: string): RouteTableConfig {
  const result = loadTableText(yaml, 'test.yaml', {});
  if (!result.ok) throw new Error(`table did not load:\n${result.problems.map((p) => `${p.line}:${p.col} ${p.message}`).join('\n')}`);
  return result.table.config;
}

function matcher(yaml: string): RouteMatcher {
  return new RouteMatcher(table(yaml));
}

const UPSTREAMS = `upstreams:
  a:
    url: http://127.0.0.1:1
  b:
    url: http://127.0.0.1:2
`;

/** Routes as YAML list items; each is a flow map such as `{name: x, path: /x, upstream: a}`. */
function routes(...items: string[]): string {
  return `${UPSTREAMS}routes:\n${items.map((i) => `  - ${i}\n`).join('')}`;
}

type MatchCase = [method: string, host: string, path: string, expected: string | undefined];

function expectMatches(m: RouteMatcher, cases: MatchCase[]): void {
  for (const [method, host, path, expected] of cases) {
    expect({ method, host, path, route: m.match(method, host, path)?.name }).toEqual({ method, host, path, route: expected });
  }
}

describe('RouteMatcher', () => {
  test('the test helper really rejects a broken table', () => {
    expect(() => table(routes('{name: x, path: /x, upstream: nope}'))).toThrow(/unknown upstream "nope"/);
  });

  describe('longest prefix wins, whatever the order in the file', () => {
    const items = [
      '{name: root, path: /, upstream: a}',
      '{name: api, path: /api, upstream: a}',
      '{name: users, path: /api/users, upstream: b}',
      '{name: user-orders, path: /api/users/orders, upstream: b}',
    ];
    const cases: MatchCase[] = [
      ['GET', '', '/', 'root'],
      ['GET', '', '/other', 'root'],
      ['GET', '', '/api', 'api'],
      ['GET', '', '/api/', 'api'],
      ['GET', '', '/api/orders', 'api'],
      ['GET', '', '/api/users', 'users'],
      ['GET', '', '/api/users/7', 'users'],
      ['GET', '', '/api/users/7/orders', 'users'],
      ['GET', '', '/api/users/orders', 'user-orders'],
      ['GET', '', '/api/users/orders/1', 'user-orders'],
    ];
    test('shortest first', () => expectMatches(matcher(routes(...items)), cases));
    test('longest first', () => expectMatches(matcher(routes(...[...items].reverse())), cases));
    test('shuffled', () => expectMatches(matcher(routes(items[2]!, items[0]!, items[3]!, items[1]!)), cases));
  });

  describe('prefixes match on a segment boundary', () => {
    const m = matcher(routes('{name: users, path: /api/users, upstream: b}'));
    const cases: MatchCase[] = [
      ['GET', '', '/api/users', 'users'],
      ['GET', '', '/api/users/', 'users'],
      ['GET', '', '/api/users/7', 'users'],
      ['GET', '', '/api/users/7/', 'users'],
      ['GET', '', '/api/usersX', undefined],
      ['GET', '', '/api/users-old', undefined],
      ['GET', '', '/api/user', undefined],
      ['GET', '', '/api', undefined],
      ['GET', '', '/', undefined],
      ['GET', '', '/API/USERS', undefined],
    ];
    test.each(cases)('%s %j %s -> %s', (method, host, path, expected) => {
      expect(m.match(method, host, path)?.name).toBe(expected);
    });
  });

  describe('exact routes beat prefix routes', () => {
    const items = [
      '{name: users-prefix, path: /api/users, upstream: a}',
      '{name: users-exact, path: /api/users, exact: true, upstream: b}',
      '{name: me-exact, path: /api/users/me, exact: true, upstream: b}',
      '{name: slash-exact, path: /api/users/, exact: true, upstream: b}',
    ];
    const cases: MatchCase[] = [
      ['GET', '', '/api/users', 'users-exact'],
      ['GET', '', '/api/users/me', 'me-exact'],
      ['GET', '', '/api/users/', 'slash-exact'],
      ['GET', '', '/api/users/me/', 'users-prefix'],
      ['GET', '', '/api/users/me/x', 'users-prefix'],
      ['GET', '', '/api/users/7', 'users-prefix'],
    ];
    test('exact listed after prefix', () => expectMatches(matcher(routes(...items)), cases));
    test('exact listed before prefix', () => expectMatches(matcher(routes(...[...items].reverse())), cases));

    test('an exact route matches only its own path', () => {
      const m = matcher(routes('{name: health, path: /status, exact: true, upstream: a}'));
      expectMatches(m, [
        ['GET', '', '/status', 'health'],
        ['GET', '', '/status/', undefined],
        ['GET', '', '/status/x', undefined],
        ['GET', '', '/', undefined],
      ]);
    });
  });

  describe('methods narrow a route; a request they exclude falls through to a shorter prefix', () => {
    const items = [
      '{name: legacy, path: /, upstream: a}',
      '{name: users, path: /api/users, methods: [GET, POST], upstream: b}',
    ];
    const cases: MatchCase[] = [
      ['GET', '', '/api/users/7', 'users'],
      ['POST', '', '/api/users', 'users'],
      ['DELETE', '', '/api/users/7', 'legacy'],
      ['PUT', '', '/api/users', 'legacy'],
      // A route that answers GET answers HEAD too.
      ['HEAD', '', '/api/users', 'users'],
    ];
    test('narrow route listed last', () => expectMatches(matcher(routes(...items)), cases));
    test('narrow route listed first', () => expectMatches(matcher(routes(...[...items].reverse())), cases));

    test('lower-case methods in the table are upper-cased', () => {
      const m = matcher(routes('{name: users, path: /api/users, methods: [get], upstream: b}'));
      expectMatches(m, [
        ['GET', '', '/api/users', 'users'],
        ['POST', '', '/api/users', undefined],
      ]);
    });

    test('on the same path, a route listing the method beats a route taking all methods', () => {
      const items2 = ['{name: any, path: /api, upstream: a}', '{name: writes, path: /api, methods: [POST, PUT], upstream: b}'];
      for (const order of [items2, [...items2].reverse()]) {
        expectMatches(matcher(routes(...order)), [
          ['POST', '', '/api/x', 'writes'],
          ['PUT', '', '/api', 'writes'],
          ['GET', '', '/api/x', 'any'],
        ]);
      }
    });

    test('methods on an exact route fall through to prefixes', () => {
      const m = matcher(routes('{name: exact-get, path: /api/users, exact: true, methods: [GET], upstream: b}', '{name: prefix, path: /api, upstream: a}'));
      expectMatches(m, [
        ['GET', '', '/api/users', 'exact-get'],
        ['POST', '', '/api/users', 'prefix'],
      ]);
    });
  });

  describe('host routes', () => {
    const items = [
      '{name: any-host, path: /api, upstream: a}',
      '{name: wildcard, path: /api, host: "*.example.com", upstream: b}',
      '{name: exact-host, path: /api, host: Admin.Example.com, upstream: b}',
    ];
    const cases: MatchCase[] = [
      ['GET', 'admin.example.com', '/api/x', 'exact-host'],
      ['GET', 'shop.example.com', '/api/x', 'wildcard'],
      ['GET', 'a.b.example.com', '/api', 'wildcard'],
      ['GET', 'example.com', '/api/x', 'any-host'],
      ['GET', 'badexample.com', '/api/x', 'any-host'],
      ['GET', 'example.com.evil.org', '/api/x', 'any-host'],
      ['GET', 'other.org', '/api/x', 'any-host'],
      ['GET', '', '/api/x', 'any-host'],
    ];
    test('listed any-host first', () => expectMatches(matcher(routes(...items)), cases));
    test('listed any-host last', () => expectMatches(matcher(routes(...[...items].reverse())), cases));

    test('usesHost is set only when some route names a host', () => {
      expect(matcher(routes(...items)).usesHost).toBe(true);
      expect(matcher(routes(items[0]!)).usesHost).toBe(false);
    });

    test('a host route whose host differs is skipped, and matching goes on to shorter prefixes', () => {
      const m = matcher(routes('{name: admin, path: /api/admin, host: admin.example.com, upstream: b}', '{name: root, path: /, upstream: a}'));
      expectMatches(m, [
        ['GET', 'admin.example.com', '/api/admin/x', 'admin'],
        ['GET', 'www.example.com', '/api/admin/x', 'root'],
        ['GET', '', '/api/admin', 'root'],
      ]);
    });

    test('with only host routes, another host gets no route', () => {
      const m = matcher(routes('{name: w, path: /, host: "*.example.com", upstream: b}'));
      expectMatches(m, [
        ['GET', 'x.example.com', '/anything', 'w'],
        ['GET', 'x.example.org', '/anything', undefined],
      ]);
    });

    test('a longer hostless prefix still beats a host route on a shorter prefix', () => {
      const m = matcher(routes('{name: host-root, path: /, host: api.example.com, upstream: b}', '{name: users, path: /users, upstream: a}'));
      expectMatches(m, [
        ['GET', 'api.example.com', '/users/1', 'users'],
        ['GET', 'api.example.com', '/orders', 'host-root'],
      ]);
    });
  });

  describe('no match', () => {
    const m = matcher(routes('{name: users, path: /api/users, upstream: b}', '{name: status, path: /status, exact: true, upstream: a}'));
    const cases: MatchCase[] = [
      ['GET', '', '/', undefined],
      ['GET', '', '/api', undefined],
      ['GET', '', '/apiusers', undefined],
      ['GET', '', '/status/x', undefined],
      ['GET', '', '/nothing/here/at/all', undefined],
    ];
    test.each(cases)('%s %j %s -> undefined', (method, host, path) => {
      expect(m.match(method, host, path)).toBeUndefined();
    });

    test('an empty route table matches nothing', () => {
      const m2 = new RouteMatcher(table(`${UPSTREAMS}routes: []\n`));
      expect(m2.match('GET', '', '/')).toBeUndefined();
      expect(m2.routes).toHaveLength(0);
    });
  });

  test('a compiled route carries its settings', () => {
    const m = matcher(routes('{name: users, path: /api/users, methods: [GET], host: "*.Example.com", upstream: b, stripPrefix: /api/, websocket: false}'));
    const r = m.match('GET', 'x.example.com', '/api/users')!;
    expect(r).toBeDefined();
    expect(r.name).toBe('users');
    expect(r.path).toBe('/api/users');
    expect(r.exact).toBe(false);
    expect([...r.methods!]).toEqual(['GET', 'HEAD']);
    expect(r.host).toBe('.example.com');
    expect(r.hostWildcard).toBe(true);
    expect(r.upstream).toBe('b');
    expect(r.stripLength).toBe('/api'.length);
    expect(r.basePath).toBe('');
    expect(r.websocket).toBe(false);
    expect(Object.isFrozen(r)).toBe(true);
  });

  test('scale: a 10,000-route table still finds the right route', () => {
    const lines = [`${UPSTREAMS}routes:`];
    for (let i = 0; i < 10_000; i++) {
      lines.push(`  - {name: r${i}, path: /svc${i % 100}/res${i}, upstream: ${i % 2 ? 'a' : 'b'}, stripPrefix: /svc${i % 100}}`);
    }
    lines.push('  - {name: root, path: /, upstream: a}');
    lines.push('  - {name: svc42-exact, path: /svc42/res7942, exact: true, methods: [DELETE], upstream: b}');
    const m = matcher(lines.join('\n') + '\n');
    expect(m.routes).toHaveLength(10_002);
    expectMatches(m, [
      ['GET', '', '/svc42/res7942/items/3', 'r7942'],
      ['GET', '', '/svc42/res7942', 'r7942'],
      ['DELETE', '', '/svc42/res7942', 'svc42-exact'],
      ['GET', '', '/svc0/res0', 'r0'],
      ['GET', '', '/svc99/res9999/x', 'r9999'],
      ['GET', '', '/svc42/res794', 'root'],
      ['GET', '', '/svc42/res79420', 'root'],
      ['GET', '', '/svc41/res7942', 'root'],
    ]);
    const r = m.match('GET', '', '/svc42/res7942/items/3')!;
    expect(upstreamPathFor(r, '/svc42/res7942/items/3', '?q=1')).toBe('/res7942/items/3?q=1');
  });
});

describe('upstreamPathFor', () => {
  function route(yaml: string, method = 'GET', path: string) {
    const r = matcher(yaml).match(method, '', path);
    if (!r) throw new Error(`no route for ${path}`);
    return r;
  }

  const BASE = `upstreams:
  plain:
    url: http://127.0.0.1:1
  slash:
    url: http://127.0.0.1:1/
  base:
    url: http://127.0.0.1:1/base
  base-slash:
    url: http://127.0.0.1:1/base/v2/
routes:
`;

  type PathCase = [label: string, routeYaml: string, path: string, query: string, expected: string];
  const cases: PathCase[] = [
    ['no strip', '{name: r, path: /api/users, upstream: plain}', '/api/users/7', '?x=1', '/api/users/7?x=1'],
    ['no strip, no query', '{name: r, path: /api/users, upstream: plain}', '/api/users/7', '', '/api/users/7'],
    ['strip /api, with query', '{name: r, path: /api/users, upstream: plain, stripPrefix: /api}', '/api/users/7', '?x=1', '/users/7?x=1'],
    ['strip /api, no query', '{name: r, path: /api/users, upstream: plain, stripPrefix: /api}', '/api/users/7', '', '/users/7'],
    ['strip with trailing slash in the table', '{name: r, path: /api/users, upstream: plain, stripPrefix: /api/}', '/api/users/7', '', '/users/7'],
    ['strip the whole path', '{name: r, path: /api/users, upstream: plain, stripPrefix: /api/users}', '/api/users', '', '/'],
    ['strip the whole path, with query', '{name: r, path: /api/users, upstream: plain, stripPrefix: /api/users}', '/api/users', '?x=1', '/?x=1'],
    ['strip the whole path, trailing slash', '{name: r, path: /api/users, upstream: plain, stripPrefix: /api/users}', '/api/users/', '', '/'],
    ['strip the whole path, deeper', '{name: r, path: /api/users, upstream: plain, stripPrefix: /api/users}', '/api/users/7', '', '/7'],
    ['stripPrefix / strips nothing', '{name: r, path: /api, upstream: plain, stripPrefix: /}', '/api/x', '', '/api/x'],
    ['upstream URL with only a slash', '{name: r, path: /api, upstream: slash}', '/api/x', '?y', '/api/x?y'],
    ['base path prepended', '{name: r, path: /api/users, upstream: base}', '/api/users/7', '', '/base/api/users/7'],
    ['base path and strip', '{name: r, path: /api/users, upstream: base, stripPrefix: /api}', '/api/users/7', '?x=1', '/base/users/7?x=1'],
    ['base path with trailing slash', '{name: r, path: /api, upstream: base-slash, stripPrefix: /api}', '/api/x', '', '/base/v2/x'],
    ['base path, whole path stripped', '{name: r, path: /api, upstream: base, stripPrefix: /api}', '/api', '?q', '/base/?q'],
    ['root route, root request', '{name: r, path: /, upstream: plain}', '/', '', '/'],
    ['root route, base path', '{name: r, path: /, upstream: base}', '/', '', '/base/'],
  ];
  test.each(cases)('%s', (_label, routeYaml, path, query, expected) => {
    expect(upstreamPathFor(route(`${BASE}  - ${routeYaml}\n`, 'GET', path), path, query)).toBe(expected);
  });
});

describe('hostForMatching', () => {
  const cases: [header: string | undefined, expected: string][] = [
    [undefined, ''],
    ['', ''],
    ['example.com', 'example.com'],
    ['Example.COM', 'example.com'],
    ['example.com:8080', 'example.com'],
    ['API.Example.com:443', 'api.example.com'],
    ['127.0.0.1:80', '127.0.0.1'],
    ['[::1]:80', '[::1]'],
    ['[::1]', '[::1]'],
    ['[FE80::1]:8443', '[fe80::1]'],
    ['[::1', ''],
  ];
  test.each(cases)('%j -> %j', (header, expected) => {
    expect(hostForMatching(header)).toBe(expected);
  });
});

describe('RouteMatcher.build (compiled in slices)', () => {
  test('matches exactly like the one-step matcher, and lets the event loop run between slices', async () => {
    const items = Array.from({ length: 2500 }, (_, i) => `{name: r${i}, path: /s${i % 50}/a${i}, upstream: ${i % 2 ? 'a' : 'b'}${i % 7 === 0 ? ', exact: true' : ''}${i % 11 === 0 ? ', methods: [POST]' : ''}}`);
    items.push('{name: all, path: /, upstream: a}', '{name: host, path: /s1, host: "*.example.com", upstream: b}');
    const t = table(routes(...items));
    let turns = 0;
    const tick = () => {
      turns++;
      if (turns < 1000) setImmediate(tick);
    };
    setImmediate(tick);
    const sliced = await RouteMatcher.build(t, 100);
    const turnsWhileBuilding = turns;
    turns = 1000;
    // 2,502 routes in slices of 100: the event loop got a turn between slices.
    expect(turnsWhileBuilding).toBeGreaterThanOrEqual(20);
    const whole = new RouteMatcher(t);
    expect(sliced.routes.map((r) => r.name)).toEqual(whole.routes.map((r) => r.name));
    expect(sliced.usesHost).toBe(true);
    const probes: Array<[string, string, string]> = [];
    for (let i = 0; i < 2500; i += 97) probes.push(['GET', '', `/s${i % 50}/a${i}`], ['POST', '', `/s${i % 50}/a${i}/x`], ['GET', 'x.example.com', `/s1/a${i}`]);
    probes.push(['GET', '', '/nothing'], ['GET', 'a.example.com', '/s1']);
    for (const [method, host, path] of probes) expect(sliced.match(method, host, path)?.name).toBe(whole.match(method, host, path)?.name);
  });
});
