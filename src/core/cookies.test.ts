import { cookieValue } from './cookies';

describe('cookieValue', () => {
  test.each([
    ['sid=abc', 'sid', 'abc'],
    ['a=1; sid=abc; b=2', 'sid', 'abc'],
    ['a=1;sid= abc ;b=2', 'sid', 'abc'],
    ['  sid\t=abc', 'sid', 'abc'],
    ['xsid=1; sid=2', 'sid', '2'],
    ['sidx=1', 'sid', undefined],
    ['a=1; b=2', 'sid', undefined],
    ['sid=', 'sid', undefined],
    ['sid=a=b', 'sid', 'a=b'],
    ['noequals; sid=v', 'sid', 'v'],
    ['sid=first; sid=second', 'sid', 'first'],
    ['', 'sid', undefined],
  ])('%j -> %s=%s', (header, name, expected) => {
    expect(cookieValue(header, name)).toBe(expected);
  });

  test('no header', () => {
    expect(cookieValue(undefined, 'sid')).toBeUndefined();
  });
});
