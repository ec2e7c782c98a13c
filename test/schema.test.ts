/**
 * routes.schema.json is generated from the validator's own schema; this test
 * fails when the published file is out of date (`npm run schema` rewrites it).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { routeTableJsonSchema, routeTableJsonSchemaText } from '../src/config/jsonSchema';

const ROOT = join(__dirname, '..');

describe('routes.schema.json', () => {
  test('is what the schema generates now (run `npm run schema` after changing src/config/schema.ts)', () => {
    expect(readFileSync(join(ROOT, 'routes.schema.json'), 'utf8')).toBe(routeTableJsonSchemaText());
  });

  test('describes the keys editors need: routes with path templates, rewrite, match, redirect and respond, strict objects', () => {
    const s = routeTableJsonSchema() as any;
    const route = s.properties.routes.items;
    for (const key of ['name', 'path', 'upstream', 'rewrite', 'match', 'redirect', 'respond', 'requestHeaders', 'maxBodyBytes', 'canary', 'shadow']) expect(route.properties).toHaveProperty(key);
    expect(route.additionalProperties).toBe(false);
    expect(route.properties.redirect.properties.status.default).toBe(302);
    expect(s.required).toEqual(expect.arrayContaining(['upstreams', 'routes']));
  });

  test('the example tables point editors at it', () => {
    expect(readFileSync(join(ROOT, 'routes.yaml'), 'utf8').split('\n')[0]).toBe('# yaml-language-server: $schema=./routes.schema.json');
  });
});
