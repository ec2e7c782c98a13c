import { PathTemplater, templateSegment } from './templates';

describe('path templates', () => {
  const t = new PathTemplater();

  test.each([
    ['/orders/48213/items/9', '/orders/{int}/items/{int}'],
    ['/users/3f2504e0-4f89-11d3-9a0c-0305e82c3301', '/users/{uuid}'],
    ['/blobs/5f3a9c0e1b2d4e6f7a8b9c0d', '/blobs/{hex}'],
    ['/commits/deadbeef1234', '/commits/{hex}'],
    ['/reports/2026-11-30', '/reports/{date}'],
    ['/reports/2026-11-30T08:15:00Z/summary', '/reports/{date}/summary'],
    ['/people/ada@example.com/avatar', '/people/{email}/avatar'],
    ['/people/ada%40example.com', '/people/{email}'],
    ['/reset/eyJhbGciOiJIUzI1NiJ9abc123XYZ', '/reset/{token}'],
    ['/sessions/aB3dE5fG7hJ9kL1mN3pQ5', '/sessions/{token}'],
    // Names stay names: words, slugs without digits, short mixed codes, hex-looking words.
    ['/api/orders', '/api/orders'],
    ['/help/user-preferences-and-settings', '/help/user-preferences-and-settings'],
    ['/v2/items', '/v2/items'],
    ['/decorators/facade', '/decorators/facade'],
    ['/', '/'],
    // Mixed segments: only the id-like ones change.
    ['/shops/12/orders/2026-01-02/lines/7/edit', '/shops/{int}/orders/{date}/lines/{int}/edit'],
  ])('%s -> %s', (path, template) => {
    expect(t.template(path)).toBe(template);
  });

  test('segments: an @ that is not an e-mail, and very long plain words, are kept', () => {
    expect(templateSegment('@me')).toBe('@me');
    expect(templateSegment('internationalization-guide')).toBe('internationalization-guide');
    expect(templateSegment('')).toBe('');
  });

  test('explicit templates win over the heuristics, in the order listed, and match whole segments only', () => {
    const x = new PathTemplater(['/reports/{name}/pdf', '/orders/{id}', '/orders/export']);
    expect(x.template('/reports/quarterly/pdf')).toBe('/reports/{name}/pdf');
    expect(x.template('/reports/2026-01-01/pdf')).toBe('/reports/{name}/pdf');
    // Listed first, so `export` is an {id} too: order matters, as written in the docs.
    expect(x.template('/orders/export')).toBe('/orders/{id}');
    expect(x.template('/reports/quarterly/csv')).toBe('/reports/quarterly/csv');
    expect(x.template('/reports//pdf')).toBe('/reports//pdf');
    expect(x.template('/orders/7/lines')).toBe('/orders/{int}/lines');
  });
});
