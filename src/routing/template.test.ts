import type { RouteTableConfig } from '../config/schema';
import { RouteMatcher, editQuery, upstreamPathFor, type MatchOut } from './compile';
import { ambiguous, parseTemplate, unsafeRegex, type PathTemplate } from './template';

/** A table of routes from short specs; upstreams are declared for every name used. */
function table(routes: Array<Record<string, unknown>>): RouteTableConfig {
  const names = new Set(routes.map((r) => String(r.upstream ?? 'app')));
  return {
    server: { encodedSlashes: 'reject' },
    upstreams: Object.fromEntries([...names].map((n) => [n, { urls: [`http://127.0.0.1:9/`], timeoutMs: 1000, breaker: {}, requestHeaders: undefined, responseHeaders: undefined }])),
    routes: routes.map((r) => ({ exact: false, websocket: true, forwardCredentials: true, replayBodyBytes: 0, upstream: 'app', ...r })),
    migration: { templates: [], count: true, inventorySize: 1000 },
  } as unknown as RouteTableConfig;
}

function matcherOf(routes: Array<Record<string, unknown>>): RouteMatcher {
  return new RouteMatcher(table(routes));
}

const tpl = (p: string) => parseTemplate(p) as PathTemplate;

describe('path templates: parsing', () => {
  test.each([
    ['/api/users/{id}', ['id'], 2, false],
    ['/files/{rest*}', ['rest'], 1, true],
    ['/u/{id:int}/x', ['id'], 2, false],
    ['/s/{slug:[a-z0-9-]{2,8}}', ['slug'], 1, false],
    ['/{a}/{b}', ['a', 'b'], 0, false],
  ])('%s', (path, params, literals, rest) => {
    const t = tpl(path);
    expect(t.params).toEqual(params);
    expect(t.literalCount).toBe(literals);
    expect(t.rest).toBe(rest);
  });

  test.each([
    ['/files/{rest*}/more', 'must be the last segment'],
    ['/u/{id}/{id}', 'appears twice'],
    ['/u/x{id}', 'a parameter is a whole segment'],
    ['/u/{1x}', 'is not a parameter name'],
    ['/u/{id', 'without its "}"'],
    ['/u/{id:(a+)+}', 'nested quantifiers'],
    ['/u/{id:(\\w)\\1}', 'backreferences'],
    ['/u/{id:(?=a)a}', 'lookarounds'],
    ['/u/{id:[}', 'not a valid regular expression'],
    ['/f/{rest*:int}', 'cannot have a constraint'],
  ])('%s is refused: %s', (path, reason) => {
    expect(parseTemplate(path)).toEqual(expect.stringContaining(reason));
  });

  test('linear-time check: a quantifier inside a character class, or a group quantified once, is fine', () => {
    expect(unsafeRegex('[a-z+*]+')).toBeNull();
    expect(unsafeRegex('(ab)+')).toBeNull();
    expect(unsafeRegex('(?:ab|cd)?x*')).toBeNull();
    expect(unsafeRegex('(?:a|b+)*')).toContain('nested quantifiers');
    expect(unsafeRegex('((a)*)+')).toContain('nested quantifiers');
  });

  test('ties: same literal count and overlapping shape, unless constraints differ', () => {
    expect(ambiguous(tpl('/a/{x}/c'), tpl('/a/b/{y}'))).toBe(true); // both take /a/b/c with 2 literal segments
    expect(ambiguous(tpl('/a/{x}'), tpl('/a/{y}'))).toBe(true);
    expect(ambiguous(tpl('/a/{x:int}'), tpl('/a/{y:uuid}'))).toBe(false);
    expect(ambiguous(tpl('/a/{x}'), tpl('/b/{y}'))).toBe(false);
    expect(ambiguous(tpl('/a/{r*}'), tpl('/a/{s*}'))).toBe(true);
  });
});

describe('matching with templates, conditions and precedence', () => {
  const m = matcherOf([
    { name: 'prefix', path: '/api/users' },
    { name: 'exact', path: '/api/users/me', exact: true },
    { name: 'byId', path: '/api/users/{id:int}' },
    { name: 'byName', path: '/api/users/{name}' },
    { name: 'orders', path: '/api/users/{id}/orders' },
    { name: 'files', path: '/files/{rest*}' },
    { name: 'fileMeta', path: '/files/{f}/meta' },
    { name: 'v2', path: '/api/orders', match: { headers: { 'X-Api-Version': '2' } }, upstream: 'orders' },
    { name: 'v1', path: '/api/orders' },
    { name: 'php', path: '/user.php', exact: true, match: { query: { id: '{id:int}' } } },
    { name: 'tenant', path: '/t', match: { headers: { 'X-Tenant': 'present' } } },
  ]);
  const go = (path: string, headers: Record<string, string> = {}, query = '') => {
    const out: MatchOut = { params: null };
    const r = m.match('GET', '', path, headers, query, out);
    return [r?.name, out.params === null ? {} : Object.fromEntries(out.params)];
  };

  test.each([
    ['/api/users/me', ['exact', {}]], // exact beats template
    ['/api/users/42', ['byId', { id: '42' }]], // constrained template
    ['/api/users/ada', ['byName', { name: 'ada' }]],
    ['/api/users/42/orders', ['orders', { id: '42' }]], // more literal segments
    ['/api/users/42/other', ['prefix', {}]], // no template fits: the prefix
    ['/api/users', ['prefix', {}]],
    ['/files/a/meta', ['fileMeta', { f: 'a' }]], // two literals beat one plus rest
    ['/files/a/b/c', ['files', { rest: 'a/b/c' }]],
    ['/files/', ['files', { rest: '' }]], // the rest may be empty
    ['/files', ['files', { rest: '' }]], // the rest may be empty, with or without the slash
    ['/filesx/a', [undefined, {}]], // ...but the literal segment must be there
    ['/api/users/%C3%A9', ['byName', { name: '%C3%A9' }]], // values kept as received (normalised, encoded)
    ['/api/users/42/', ['prefix', {}]], // a trailing slash is another segment: the template does not take it
  ])('%s', (path, expected) => {
    expect(go(path)).toEqual(expected);
  });

  test('header conditions: more conditions beat fewer; present; not met falls through', () => {
    expect(go('/api/orders', { 'x-api-version': '2' })[0]).toBe('v2');
    expect(go('/api/orders', { 'x-api-version': '1' })[0]).toBe('v1');
    expect(go('/api/orders')[0]).toBe('v1');
    expect(go('/t', { 'x-tenant': 'acme' })[0]).toBe('tenant');
    expect(go('/t')[0]).toBe(undefined);
  });

  test('query conditions capture constrained values (first occurrence), as sent', () => {
    expect(go('/user.php', {}, '?id=7&x=1')).toEqual(['php', { id: '7' }]);
    expect(go('/user.php', {}, '?x=1&id=7&id=8')).toEqual(['php', { id: '7' }]);
    expect(go('/user.php', {}, '?id=abc')[0]).toBe(undefined);
    expect(go('/user.php', {}, '')[0]).toBe(undefined);
  });
});

describe('rewrite and query edits', () => {
  test('the upstream path is built from the parameters; the query is kept, edited in place, repeated keys and order kept', () => {
    const m = matcherOf([
      { name: 'php', path: '/user.php', exact: true, match: { query: { id: '{id:int}' } }, rewrite: '/users/{id}', query: { set: {}, remove: ['id'] } },
      { name: 'v1', path: '/api/v1/orders/{id}', rewrite: '/orders/{id}', query: { set: { source: 'v1', id: '{id}' }, remove: ['debug'] } },
      { name: 'files', path: '/old/{rest*}', rewrite: '/new/{rest}' },
    ]);
    const path = (p: string, q: string) => {
      const out: MatchOut = { params: null };
      const r = m.match('GET', '', p, {}, q, out)!;
      return upstreamPathFor(r, p, q, out.params);
    };
    expect(path('/user.php', '?id=7&lang=en')).toBe('/users/7?lang=en');
    expect(path('/user.php', '?id=7')).toBe('/users/7');
    expect(path('/api/v1/orders/9', '?debug=1&a=1&a=2&source=x&b')).toBe('/orders/9?a=1&a=2&source=v1&b&id=9');
    expect(path('/api/v1/orders/9', '')).toBe('/orders/9?source=v1&id=9');
    expect(path('/old/a/b%20c', '?q=1')).toBe('/new/a/b%20c?q=1');
    expect(path('/old/', '')).toBe('/new/');
  });

  test('editQuery: an encoded key is recognised; a set value takes the first occurrence\'s place', () => {
    const edits = { set: [['page', ['2']] as const], remove: new Set(['page', 'utm_source']) };
    expect(editQuery('?utm%5Fsource=x&page=1&q=a&page=3', edits, new Map())).toBe('?page=2&q=a');
  });
});
