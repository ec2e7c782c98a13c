/**
 * Every key the route-table schema accepts, as the paths the reference writes:
 * `server.port`, `upstreams.<name>.breaker.openMs`, `routes[].canary.steps`.
 * Read from the zod declarations themselves, so the docs test compares the
 * reference with the code and cannot drift from it.
 */
import type { ZodType } from 'zod';
import { RouteTableSchema } from '../../src/config/schema';

interface Def {
  type: string;
  innerType?: ZodType;
  in?: ZodType;
  out?: ZodType;
  shape?: Record<string, ZodType>;
  element?: ZodType;
  valueType?: ZodType;
  options?: ZodType[];
}

const def = (s: ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;
const WRAPPERS = new Set(['default', 'prefault', 'optional', 'nullable', 'readonly', 'catch', 'nonoptional']);
const STRUCTURED = new Set(['object', 'record', 'array']);

/** Looks through defaults, optionals and pipes (preprocess, transform) to the shape a user writes. */
function unwrap(schema: ZodType): Def {
  let d = def(schema);
  for (;;) {
    if (WRAPPERS.has(d.type) && d.innerType) d = def(d.innerType);
    else if (d.type === 'pipe' && d.in && d.out) {
      const input = unwrap(d.in);
      d = STRUCTURED.has(input.type) ? input : unwrap(d.out);
    } else return d;
  }
}

function walk(schema: ZodType, prefix: string, out: string[]): void {
  const d = unwrap(schema);
  if (d.type === 'object' && d.shape) {
    for (const [key, child] of Object.entries(d.shape)) {
      const path = prefix ? `${prefix}.${key}` : key;
      out.push(path);
      walk(child, path, out);
    }
  } else if (d.type === 'record' && d.valueType) walk(d.valueType, `${prefix}.<name>`, out);
  else if (d.type === 'array' && d.element) walk(d.element, `${prefix}[]`, out);
  // `rateLimit: { … } | false`: the object's keys.
  else if (d.type === 'union' && d.options) for (const option of d.options) walk(option, prefix, out);
}

export function routeTableKeys(): string[] {
  const out: string[] = [];
  walk(RouteTableSchema as unknown as ZodType, '', out);
  return out;
}

/** `routes[].canary.rollback.windowMs` -> `routes[].canary.rollback`, `routes[].canary`, `routes`. */
export function ancestors(path: string): string[] {
  const result: string[] = [];
  const parts = path.split('.');
  for (let i = parts.length - 1; i > 0; i--) {
    const parent = parts.slice(0, i);
    const last = parent[parent.length - 1]!;
    if (last === '<name>') continue;
    parent[parent.length - 1] = last.replace(/\[\]$/, '');
    result.push(parent.join('.'));
  }
  return result;
}
