import { z } from 'zod';
import { RouteTableSchema } from './schema';

/**
 * The JSON Schema of routes.yaml, generated from the zod schema the validator
 * uses (never maintained by hand): editors with a YAML language server
 * complete and check keys with it. Cross-reference checks (an unknown
 * upstream, two templates that tie) stay `strangler validate`'s.
 * `npm run schema` writes it to routes.schema.json; a test fails when that
 * file is out of date.
 */
export function routeTableJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(RouteTableSchema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;
  return {
    $schema: schema.$schema,
    title: 'Strangler route table (routes.yaml)',
    description: 'Every key is described in docs/reference/route-table.md. Generated from src/config/schema.ts by `npm run schema`.',
    ...Object.fromEntries(Object.entries(schema).filter(([k]) => k !== '$schema')),
  };
}

export function routeTableJsonSchemaText(): string {
  return `${JSON.stringify(routeTableJsonSchema(), null, 2)}\n`;
}
