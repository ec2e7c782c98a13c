import { restorePrefix } from './headers';

const ORIGINS = ['http://10.0.0.5:8080', 'http://svc.internal'];

function location(value: string): string {
  const h = ['Location', value];
  restorePrefix(h, '/svc', true, true, ORIGINS);
  return h[1]!;
}

function cookie(value: string): string {
  const h = ['Set-Cookie', value];
  restorePrefix(h, '/svc', true, true, ORIGINS);
  return h[1]!;
}

describe('restorePrefix: Location', () => {
  test.each([
    ['/hello', '/svc/hello'],
    ['/', '/svc/'],
    ['/hello?x=1#top', '/svc/hello?x=1#top'],
    ['/svcX', '/svc/svcX'],
    ['/svc', '/svc'],
    ['/svc/a', '/svc/a'],
    ['/svc?x=1', '/svc?x=1'],
    ['/svc#top', '/svc#top'],
    ['http://10.0.0.5:8080/moved?a=1', '/svc/moved?a=1'],
    ['HTTP://10.0.0.5:8080/moved', '/svc/moved'],
    ['http://svc.internal:80/x', '/svc/x'],
    ['http://10.0.0.5:8080?x=1', '/svc/?x=1'],
    ['http://10.0.0.5:8080', '/svc/'],
    ['https://sso.example/start', 'https://sso.example/start'],
    ['//evil.example/x', '//evil.example/x'],
    ['relative/path', 'relative/path'],
  ])('%s -> %s', (given, expected) => expect(location(given)).toBe(expected));
});

describe('restorePrefix: Set-Cookie Path', () => {
  test.each([
    ['sid=1; Path=/; HttpOnly', 'sid=1; Path=/svc; HttpOnly'],
    ['sid=1; path=/settings', 'sid=1; path=/svc/settings'],
    ['sid=1; Path = /x; Secure', 'sid=1; Path = /svc/x; Secure'],
    ['sid=1; Path=/svc', 'sid=1; Path=/svc'],
    ['sid=1; Path=/; Path=/admin', 'sid=1; Path=/svc; Path=/svc/admin'],
    ['sid=1', 'sid=1'],
    ['sid=1; Domain=example.com', 'sid=1; Domain=example.com'],
  ])('%s -> %s', (given, expected) => expect(cookie(given)).toBe(expected));

  test('only the switched-on rewrite runs', () => {
    const h = ['Location', '/a', 'Set-Cookie', 'a=1; Path=/'];
    restorePrefix(h, '/svc', false, true, ORIGINS);
    expect(h).toEqual(['Location', '/a', 'Set-Cookie', 'a=1; Path=/svc']);
  });
});
