import { brotliCompressSync, gzipSync } from 'node:zlib';
import { compareAnswers, headerSelection, type Answer, type CompareOptions } from './compare';

const OPTS: CompareOptions = { ...headerSelection(['content-type', 'location', 'cache-control'], []), ignore: [], unordered: [], maxBodyBytes: 1 << 20 };
const json = (value: unknown, extra: Record<string, string> = {}): Answer => ({ status: 200, headers: { 'content-type': 'application/json', ...extra }, body: Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)) });
const fields = (a: Answer, b: Answer, opts: Partial<CompareOptions> = {}) => {
  const c = compareAnswers(a, b, { ...OPTS, ...opts });
  return c.differences.map((d) => `${d.kind} ${d.path}`);
};

describe('compareAnswers', () => {
  test('JSON: key order, whitespace and number formatting do not matter', () => {
    const a = json('{"a": 1, "b": {"x": [1, 2.50, 3]}, "c": "s"}');
    const b = json('{"c":"s","b":{"x":[1.0,2.5,3e0]},"a":1.00}');
    expect(compareAnswers(a, b, OPTS)).toEqual({ outcome: 'match', differences: [] });
  });

  test('JSON: a changed field, a missing one, an extra one and a type change, each at its path', () => {
    const a = json({ user: { email: 'a@x', name: 'A', age: 3 }, items: [{ price: 1 }, { price: 2 }] });
    const b = json({ user: { email: 'b@x', age: '3', nick: 'n' }, items: [{ price: 1 }, { price: 5 }] });
    expect(fields(a, b)).toEqual(['changed $.user.email', 'missing $.user.name', 'type $.user.age', 'extra $.user.nick', 'changed $.items[1].price']);
    const c = compareAnswers(a, b, OPTS);
    expect(c.differences.find((d) => d.path === '$.items[1].price')).toMatchObject({ field: '$.items[*].price', primary: 2, shadow: 5 });
  });

  test('ignore drops a path and everything under it; unordered compares an array as a multiset', () => {
    const a = json({ generatedAt: 1, meta: { etag: 'x', n: 1 }, items: [{ id: 1, etag: 'a' }, { id: 2, etag: 'b' }], tags: ['x', 'y', 'y'] });
    const b = json({ generatedAt: 2, meta: { etag: 'y', n: 1 }, items: [{ id: 1, etag: 'c' }, { id: 2, etag: 'd' }], tags: ['y', 'x', 'y'] });
    expect(fields(a, b, { ignore: ['$.generatedAt', '$.meta.etag', '$.items[*].etag'], unordered: ['$.tags'] })).toEqual([]);
    expect(fields(a, json({ ...JSON.parse(b.body.toString()), tags: ['y', 'x', 'z'] }), { ignore: ['$.generatedAt', '$.meta', '$.items'], unordered: ['$.tags'] })).toEqual(['extra $.tags[*]', 'missing $.tags[*]']);
  });

  test('arrays of different lengths report the missing and extra elements', () => {
    expect(fields(json([1, 2, 3]), json([1, 2]))).toEqual(['missing $[2]']);
    expect(fields(json([1]), json([1, 9]))).toEqual(['extra $[1]']);
  });

  test('keys that are not identifiers are quoted in the path', () => {
    expect(fields(json({ 'a b': 1 }), json({ 'a b': 2 }))).toEqual(['changed $["a b"]']);
  });

  test('status and compared headers; other headers never matter', () => {
    const a = json({ ok: 1 }, { 'cache-control': 'no-store', date: 'Mon', 'x-request-id': '1' });
    const b = { ...json({ ok: 1 }, { date: 'Tue', 'x-request-id': '2' }), status: 404 };
    expect(fields(a, b)).toEqual(['changed status', 'missing header:cache-control']);
  });

  test('a gzip or br answer on one side only matches when the content is equal', () => {
    const value = { big: 'x'.repeat(1000), n: [1, 2, 3] };
    const plain = json(value);
    const gz: Answer = { status: 200, headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gzipSync(JSON.stringify(value)) };
    const br: Answer = { status: 200, headers: { 'content-type': 'application/json', 'content-encoding': 'br' }, body: brotliCompressSync(JSON.stringify({ ...value, n: [1, 2] })) };
    expect(compareAnswers(plain, gz, OPTS).outcome).toBe('match');
    expect(fields(plain, br)).toEqual(['missing $.n[2]']);
  });

  test('a body that decodes past maxBodyBytes is not compared (a decompression bomb stays bounded)', () => {
    const bomb: Answer = { status: 200, headers: { 'content-type': 'text/plain', 'content-encoding': 'gzip' }, body: gzipSync(Buffer.alloc(10 << 20)) };
    expect(bomb.body.length).toBeLessThan(100_000);
    expect(compareAnswers(bomb, bomb, OPTS).outcome).toBe('too-large');
  });

  test('text bodies exactly, binary bodies by SHA-256', () => {
    const text = (s: string): Answer => ({ status: 200, headers: { 'content-type': 'text/html' }, body: Buffer.from(s) });
    expect(fields(text('<p>a</p>'), text('<p>a</p>'))).toEqual([]);
    expect(fields(text('<p>a</p>'), text('<p>b</p>'))).toEqual(['changed body']);
    const bin = (b: number[]): Answer => ({ status: 200, headers: { 'content-type': 'image/png' }, body: Buffer.from(b) });
    const c = compareAnswers(bin([1, 2]), bin([1, 3]), OPTS);
    expect(c.differences[0]).toMatchObject({ path: 'body', primary: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
  });

  test('JSON that does not parse is compared as text', () => {
    expect(fields(json('{"a":'), json('{"a":'))).toEqual([]);
    expect(fields(json('{"a":'), json('{"b":'))).toEqual(['changed body']);
  });

  test('headers: the listed ones only, minus ignoreHeaders; "*" compares every header but the volatile ones and ignoreHeaders, Set-Cookie by cookie names', () => {
    const a = json({ ok: 1 }, { 'cache-control': 'no-store', etag: '"a"', date: 'Mon', 'x-team': 'old', 'set-cookie': ['sid=1; Path=/', 'theme=dark'] } as unknown as Record<string, string>);
    const b = json({ ok: 1 }, { 'cache-control': 'max-age=60', etag: '"b"', date: 'Tue', 'x-new': 'yes', 'set-cookie': ['theme=light', 'sid=2; Path=/'] } as unknown as Record<string, string>);
    expect(fields(a, b)).toEqual(['changed header:cache-control']);
    expect(fields(a, b, headerSelection(['content-type', 'cache-control'], ['Cache-Control']))).toEqual([]);
    expect(fields(a, b, headerSelection('*', []))).toEqual(['changed header:cache-control', 'changed header:etag', 'extra header:x-new', 'missing header:x-team']);
    expect(fields(a, b, headerSelection('*', ['etag', 'x-new', 'x-team', 'cache-control']))).toEqual([]);
    const c = json({ ok: 1 }, { 'set-cookie': 'sid=3' });
    expect(fields(a, c, headerSelection('*', ['cache-control', 'etag', 'x-team']))).toEqual(['changed header:set-cookie']);
  });
});
