import { normalizePath, splitTarget } from './path';

type Case = [input: string, expected: string | null];

describe('normalizePath', () => {
  describe('already-normal paths are returned unchanged', () => {
    const cases: string[] = ['/', '/api', '/api/users', '/api/users/7', '/a/b/', '/api/users;v=1', '/a-b_c~d.e', '/a/b.json', '/a/..b', '/a/b..'];
    test.each(cases)('%s', (p) => {
      expect(normalizePath(p)).toBe(p);
      expect(normalizePath(p, true)).toBe(p);
    });
  });

  describe('empty segments, dot segments, dot-dot segments', () => {
    const cases: Case[] = [
      ['//api', '/api'],
      ['///api//users', '/api/users'],
      ['/a/./b', '/a/b'],
      ['/./a', '/a'],
      ['/.', '/'],
      ['/a/b/../c', '/a/c'],
      ['/api/users/../../admin', '/admin'],
      ['/a/..', '/'],
      ['/a/../b/../c', '/c'],
      ['/.well-known/x', '/.well-known/x'],
      ['/a/.b/c', '/a/.b/c'],
    ];
    test.each(cases)('%s -> %s', (input, expected) => {
      expect(normalizePath(input)).toBe(expected);
    });
  });

  describe('encoded dots are decoded before dot segments are resolved', () => {
    const cases: Case[] = [
      ['/api/users/%2e%2e/x', '/api/x'],
      ['/api/users/%2E%2e/x', '/api/x'],
      ['/api/users/%2e%2E/x', '/api/x'],
      ['/api/users/.%2E/x', '/api/x'],
      ['/api/users/%2e./x', '/api/x'],
      ['/api/%2e/x', '/api/x'],
      ['/api/users/%2e%2e/%2e%2e/admin', '/admin'],
    ];
    test.each(cases)('%s -> %s', (input, expected) => {
      expect(normalizePath(input)).toBe(expected);
    });
  });

  describe('going above the root is refused', () => {
    const cases: string[] = ['/..', '/../', '/../a', '/a/../..', '/a/../../b', '/%2e%2e', '/a/%2e%2e/%2E%2E/b', '/./..'];
    test.each(cases)('%s -> null', (p) => {
      expect(normalizePath(p)).toBeNull();
      expect(normalizePath(p, true)).toBeNull();
    });
  });

  describe('%2F (encoded slash)', () => {
    const refused: string[] = ['/api%2Fadmin', '/api%2fadmin', '/api%2F..%2Fadmin', '/%2F'];
    test.each(refused)('%s is refused by default', (p) => {
      expect(normalizePath(p)).toBeNull();
      expect(normalizePath(p, false)).toBeNull();
    });

    const decoded: Case[] = [
      ['/api%2Fadmin', '/api/admin'],
      ['/api%2fadmin', '/api/admin'],
      ['/api%2F..%2Fadmin', '/admin'],
      ['/api%2F%2Fusers', '/api/users'],
      ['/a%2F.%2Fb', '/a/b'],
      ['/api%2F', '/api/'],
    ];
    test.each(decoded)('%s -> %s with decodeSlashes', (input, expected) => {
      expect(normalizePath(input, true)).toBe(expected);
    });

    test('decoding slashes still refuses going above the root', () => {
      expect(normalizePath('/%2F..%2F..%2Fetc', true)).toBeNull();
    });
  });

  describe('ambiguous or dangerous characters are refused', () => {
    const cases: [label: string, input: string][] = [
      ['%5C (encoded backslash)', '/api%5C..%5Cadmin'],
      ['%5c lower-case', '/api%5cadmin'],
      ['raw backslash', '/api\\admin'],
      ['raw backslash dot-dot', '/api\\..\\admin'],
      ['%00', '/api%00/x'],
      ['%0A', '/api%0Ax'],
      ['%0d', '/api%0dx'],
      ['%1F', '/a%1Fb'],
      ['%7F (DEL)', '/a%7Fb'],
      ['raw NUL', '/api\u0000x'],
      ['raw tab', '/api\tx'],
      ['raw newline', '/api\nx'],
      ['raw DEL', '/api\u007fx'],
      ['raw space', '/api x'],
      ['raw #', '/api#x'],
      ['raw non-ASCII', '/caf\u00e9'],
      ['malformed escape %zz', '/api/%zz'],
      ['malformed escape %2 at end', '/api/%2'],
      ['malformed escape % at end', '/api/%'],
      ['malformed escape %g1', '/api/%g1'],
      ['malformed escape %2g', '/api/%2g/x'],
      ['..; segment', '/api/..;/admin'],
      ['..;param segment', '/api/..;jsessionid=1/admin'],
      ['.; segment', '/api/.;/admin'],
      ['encoded ..; segment', '/api/%2e%2e;/admin'],
      ['..; last segment', '/api/..;'],
      ['empty string', ''],
      ['relative path', 'api'],
      ['relative path with slash', 'api/users'],
      ['relative dot path', './api'],
      ['absolute URI', 'http://host/api'],
      ['asterisk form', '*'],
    ];
    test.each(cases)('%s -> null', (_label, input) => {
      expect(normalizePath(input)).toBeNull();
      expect(normalizePath(input, true)).toBeNull();
    });
  });

  describe('percent-escapes: unreserved decoded, reserved kept upper-case', () => {
    const cases: Case[] = [
      ['/%41', '/A'],
      ['/%61pi', '/api'],
      ['/a%7Eb', '/a~b'],
      ['/a%7eb', '/a~b'],
      ['/%2D%5F%30', '/-_0'],
      ['/a%3ab', '/a%3Ab'],
      ['/a%3Ab', '/a%3Ab'],
      ['/a%20b', '/a%20b'],
      ['/a%3fb', '/a%3Fb'],
      ['/a%23b', '/a%23b'],
      ['/a%25b', '/a%25b'],
      ['/a%252e', '/a%252e'],
      ['/caf%c3%a9', '/caf%C3%A9'],
      ['/a%3b/b', '/a%3B/b'],
      ['/a/%41/../b', '/a/b'],
    ];
    test.each(cases)('%s -> %s', (input, expected) => {
      expect(normalizePath(input)).toBe(expected);
    });
  });

  describe('a trailing slash is kept', () => {
    const cases: Case[] = [
      ['/a/b/', '/a/b/'],
      ['/a/b/.', '/a/b/'],
      ['/a/b/./', '/a/b/'],
      ['/a/b/c/..', '/a/b/'],
      ['/a/b/c/../', '/a/b/'],
      ['/a/b//', '/a/b/'],
      ['/a/%2e', '/a/'],
      ['/a/./b', '/a/b'],
      ['/a/b/../c', '/a/c'],
    ];
    test.each(cases)('%s -> %s', (input, expected) => {
      expect(normalizePath(input)).toBe(expected);
    });
  });

  test('the result is a fixed point: normalising twice changes nothing', () => {
    const inputs = ['//api', '/a/./b', '/api/users/%2e%2e/x', '/a%3ab', '/%41', '/a/b/.', '/api%2F..%2Fadmin'];
    for (const input of inputs) {
      const once = normalizePath(input, true);
      expect(once).not.toBeNull();
      expect(normalizePath(once!, true)).toBe(once);
    }
  });
});

describe('splitTarget', () => {
  const cases: [target: string, path: string, query: string][] = [
    ['/api/users', '/api/users', ''],
    ['/api/users?x=1', '/api/users', '?x=1'],
    ['/api/users?', '/api/users', '?'],
    ['/?a=1&b=2', '/', '?a=1&b=2'],
    ['/a?b?c', '/a', '?b?c'],
    ['/a?x=/../admin', '/a', '?x=/../admin'],
    ['?x=1', '', '?x=1'],
    ['', '', ''],
  ];
  test.each(cases)('%j -> [%j, %j]', (target, path, query) => {
    expect(splitTarget(target)).toEqual([path, query]);
  });
});
