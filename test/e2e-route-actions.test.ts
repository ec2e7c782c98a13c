/**
 * Route tables for real migrations, through a real gateway: path templates
 * and rewrites (a legacy PHP URL), an API-version header deciding the side,
 * header edits both ways, redirects and fixed answers (a retired page),
 * per-route body limits and timeouts, and the validation of each.
 */
import { connect } from 'node:net';
import { loadTableText } from '../src/config/load';
import { explain } from '../src/routing/explain';
import { json, send, startGateway, startUpstream, type TestGateway, type Upstream } from './helpers/servers';

describe('route actions and rewrites', () => {
  let monolith: Upstream;
  let users: Upstream;
  let slow: Upstream;
  let gw: TestGateway;
  beforeAll(async () => {
    monolith = await startUpstream((req, res, body) => {
      res.writeHead(200, { 'content-type': 'application/json', server: 'legacy-php', 'x-powered-by': 'PHP/5.6' });
      res.end(JSON.stringify({ from: 'monolith', url: req.url, got: body.length }));
    });
    users = await startUpstream();
    slow = await startUpstream((_req, res) => void setTimeout(() => res.writeHead(200).end('late'), 400));
    gw = await startGateway(`
upstreams:
  monolith: { url: ${monolith.url}, responseHeaders: { remove: [X-Powered-By] } }
  users: { url: ${users.url}/svc, requestHeaders: { set: { X-Caller: strangler } } }
  slow: { url: ${slow.url}, timeoutMs: 5000 }
routes:
  - { name: legacy, path: /, upstream: monolith }
  # A legacy PHP URL, moved: /user.php?id=7 -> users service /users/7
  - name: user-php
    path: /user.php
    exact: true
    match: { query: { id: "{id:int}" } }
    upstream: users
    rewrite: "/users/{id}"
    query: { remove: [id] }
    requestHeaders: { set: { X-Legacy-Url: "/user.php?id={id}", X-Trace: "{requestId}" }, remove: [X-Debug] }
    responseHeaders: { set: { X-Served-By: "users-{id}" } }
  # The API version decides the side.
  - { name: orders-v2, path: "/api/orders/{id}", match: { headers: { X-Api-Version: "2" } }, upstream: users, rewrite: "/orders/{id}" }
  - { name: orders-v1, path: /api/orders, upstream: monolith }
  # Retired and moved pages.
  - { name: old-report, path: "/reports/{year:int}/summary.html", redirect: { to: "/reports/{year}", status: 301 } }
  - { name: old-help, path: /help, redirect: { to: "https://help.example.com/start", status: 308, dropQuery: true } }
  - { name: fax, path: /fax, respond: { status: 410, body: '{"error":"the fax service was retired in 2024"}', contentType: application/json } }
  # Captured values are data (review findings): an off-site redirect, path traversal, query injection.
  - { name: old-any, path: "/old/{rest*}", redirect: { to: "/{rest}" } }
  - { name: item, path: /item, exact: true, match: { query: { id: "{id}" } }, upstream: users, rewrite: "/items/{id}", query: { remove: [id] } }
  - { name: tag, path: "/tag/{t}", upstream: users, rewrite: /tags, query: { set: { name: "{t}" } } }
  # Limits.
  - { name: upload, path: /upload, upstream: monolith, maxBodyBytes: 1000 }
  - { name: quick, path: /quick, upstream: slow, timeoutMs: 100 }
`);
  });
  afterAll(async () => {
    await gw.stop();
    await Promise.all([monolith.close(), users.close(), slow.close()]);
  });

  test('a legacy PHP URL is rewritten to the new service\'s path, the query edited, headers set and removed both ways', async () => {
    const r = await send(gw.port, '/user.php?id=7&lang=en', { headers: { 'x-debug': 'secret-debug', 'x-request-id': 'php-1' } });
    expect(r.status).toBe(200);
    const seen = users.received.at(-1)!;
    expect(seen.url).toBe('/svc/users/7?lang=en');
    expect(seen.headers['x-legacy-url']).toBe('/user.php?id=7');
    expect(seen.headers['x-trace']).toBe('php-1');
    expect(seen.headers['x-caller']).toBe('strangler');
    expect(seen.headers['x-debug']).toBeUndefined();
    expect(r.headers['x-served-by']).toBe('users-7');
    // Not an int: no route matches the query condition, so the catch-all monolith answers.
    const other = await send(gw.port, '/user.php?id=ada');
    expect(json(other)).toMatchObject({ from: 'monolith', url: '/user.php?id=ada' });
    // The upstream's own response edit applies to the monolith's answers.
    expect(other.headers['x-powered-by']).toBeUndefined();
    expect(other.headers.server).toBe('legacy-php');
  });

  test('an API version header decides the side; explain says which condition decided and what was captured', async () => {
    await send(gw.port, '/api/orders/9', { headers: { 'x-api-version': '2' } });
    expect(users.received.at(-1)!.url).toBe('/svc/orders/9');
    const v1 = await send(gw.port, '/api/orders/9', { headers: { 'x-api-version': '1' } });
    expect(json(v1)).toMatchObject({ from: 'monolith', url: '/api/orders/9' });
    const e = explain(gw.gw.table.config, 'GET', '/api/orders/9', { 'X-Api-Version': '2' });
    expect(e).toMatchObject({ outcome: 'proxy', route: { name: 'orders-v2', kind: 'template', conditions: ['header X-Api-Version: 2'] }, params: { id: '9' }, upstreamPath: '/svc/orders/9' });
    expect(explain(gw.gw.table.config, 'GET', '/user.php?id=7', {})).toMatchObject({ route: { name: 'user-php' }, params: { id: '7' }, upstreamPath: '/svc/users/7' });
  });

  test('redirects keep the query unless told to drop it; a fixed answer for a retired page, with the request id', async () => {
    const moved = await send(gw.port, '/reports/2019/summary.html?print=1');
    expect(moved.status).toBe(301);
    expect(moved.headers.location).toBe('/reports/2019?print=1');
    const help = await send(gw.port, '/help?x=1');
    expect(help.status).toBe(308);
    expect(help.headers.location).toBe('https://help.example.com/start');
    const fax = await send(gw.port, '/fax', { headers: { 'x-request-id': 'fax-1' } });
    expect(fax.status).toBe(410);
    expect(fax.headers['content-type']).toBe('application/json');
    expect(fax.headers['x-request-id']).toBe('fax-1');
    expect(json(fax).error).toContain('retired');
    expect(explain(gw.gw.table.config, 'GET', '/reports/2019/summary.html?print=1', {})).toMatchObject({ outcome: 'redirect', status: 301, redirect: { location: '/reports/2019?print=1' } });
    expect(explain(gw.gw.table.config, 'GET', '/fax', {})).toMatchObject({ outcome: 'respond', status: 410 });
  });

  test('captured values stay data: no off-site redirect from an empty segment, no path traversal or query injection from a query value or a segment', async () => {
    const r = await send(gw.port, '/old/;x/evil.com');
    expect(r.status).toBe(302);
    expect(r.headers.location).toBe('/evil.com');
    await send(gw.port, '/item?id=../../admin/delete?x=1');
    expect(users.received.at(-1)!.url).toBe('/svc/items/..%2F..%2Fadmin%2Fdelete%3Fx%3D1');
    await send(gw.port, '/tag/x&admin=true?a=1');
    expect(users.received.at(-1)!.url).toBe('/svc/tags?a=1&name=x%26admin%3Dtrue');
  });

  test('413 before proxying for a declared length over maxBodyBytes; a chunked body is cut off with 413 when it passes it', async () => {
    const before = monolith.received.length;
    const big = await send(gw.port, '/upload', { method: 'POST', body: 'x'.repeat(1001), headers: { 'content-length': '1001' } });
    expect(big.status).toBe(413);
    expect(json(big).error.code).toBe('PAYLOAD_TOO_LARGE');
    expect(big.headers.connection).toBe('close');
    const small = await send(gw.port, '/upload', { method: 'POST', body: 'x'.repeat(1000), headers: { 'content-length': '1000' } });
    expect(json(small).got).toBe(1000);
    expect(monolith.received.length).toBe(before + 1);
    // Chunked: 600 bytes, then 600 more.
    const answer = await new Promise<string>((resolve, reject) => {
      const s = connect(gw.port, '127.0.0.1', () => {
        s.write('POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n' + 'a'.repeat(600) + '\r\n');
        setTimeout(() => s.write('258\r\n' + 'b'.repeat(600) + '\r\n'), 50);
      });
      let got = '';
      s.on('data', (c) => (got += c));
      s.on('close', () => resolve(got));
      s.on('error', reject);
      setTimeout(() => s.destroy(), 3000);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).toContain('PAYLOAD_TOO_LARGE');
  });

  test('a route\'s own timeoutMs: 504 at 100 ms although the upstream allows 5 s', async () => {
    const started = performance.now();
    const r = await send(gw.port, '/quick');
    expect(r.status).toBe(504);
    expect(performance.now() - started).toBeLessThan(350);
  });
});

describe('validation of the new route keys', () => {
  const problems = (routes: string, extra = '') => {
    const r = loadTableText(`upstreams:\n  app: { url: http://127.0.0.1:9 }\n  other: { url: http://127.0.0.1:9 }\n${extra}routes:\n${routes}`, 'routes.yaml', {});
    return r.ok ? [] : r.problems.map((p) => `${p.line}:${p.col} ${p.message}`);
  };

  test.each([
    ['  - { name: a, path: "/u/{id}", upstream: app, rewrite: "/v2/{user}" }', '5:', '{user} is not a parameter of this route (it captures {id}'],
    ['  - { name: a, path: "/u/{id:(a+)+}", upstream: app }', '5:', 'nested quantifiers'],
    ['  - { name: a, path: "/u/{id}", upstream: app }\n  - { name: b, path: "/u/{name}", upstream: other }', '6:', 'matches the same requests as routes[0] (a)'],
    ['  - { name: a, path: /u, upstream: app, requestHeaders: { set: { X-Forwarded-For: 1.2.3.4 } } }', '5:', 'X-Forwarded-For cannot be set here'],
    ['  - { name: a, path: /u, upstream: app, requestHeaders: { remove: [X-User-Id] } }', '5:', 'X-User-Id cannot be removed here: it carries the verified identity'],
    ['  - { name: a, path: /u, upstream: app, respond: { status: 410 } }', '5:', 'give exactly one of upstream, redirect or respond (this route has upstream and respond)'],
    ['  - { name: a, path: /u }', '5:', 'give exactly one of upstream, redirect or respond'],
    ['  - { name: a, path: "/u/{id}", upstream: app, stripPrefix: /u, rewrite: "/x/{id}" }', '5:', 'rewrite and stripPrefix cannot be combined'],
    ['  - { name: a, path: /u, redirect: { to: /x }, fallback: app }', '5:', 'fallback needs an upstream'],
    ['  - { name: a, path: /u, upstream: app, match: { query: { id: "{id:[}" } } }', '5:', 'not a valid regular expression'],
    ['  - { name: a, path: /u, redirect: { to: "/x/{id}" } }', '5:', '{id} is not a parameter of this route'],
  ])('%s', (routes, line, message) => {
    const found = problems(routes);
    expect(found).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^${line}\\d+ .*${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`))]));
  });

  test('an upstream\'s header edits are checked too, and good tables validate', () => {
    expect(problems('  - { name: a, path: /u, upstream: app }\n', '').length).toBe(0);
    const bad = loadTableText(`upstreams:\n  app: { url: http://127.0.0.1:9, responseHeaders: { set: { Content-Length: "1" } } }\nroutes: [{ name: a, path: /, upstream: app }]\n`, 'routes.yaml', {});
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.problems[0]!.message).toContain('upstreams.app.responseHeaders: Content-Length cannot be set here');
  });
});
