import { ambiguous, isTemplate, parseCondition, parseTemplate, parseValueTemplate, references, type PathTemplate } from '../routing/template';
import { GATEWAY_OWNED } from '../core/ownedHeaders';
import type { ConfigProblem, SourceMap } from './load';
import type { HeaderEdits, RouteConfig, RouteTableConfig } from './schema';

/**
 * Checks of the route features that reshape requests: templates, rewrites,
 * conditions, header and query edits, redirect and fixed answers. Each
 * problem is reported at the key it is about.
 */

/** Request headers the gateway owns: framing, hop-by-hop, forwarding, tracing, its own marks. */
const OWNED_REQUEST = [
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  'expect',
  ...GATEWAY_OWNED,
  'x-request-id',
  'traceparent',
  'tracestate',
];

/** Response headers the gateway owns: framing, hop-by-hop, the request id. */
const OWNED_RESPONSE = ['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'x-request-id'];

/** The identity headers of the table's auth (set only from a verified identity). */
function identityHeaders(table: RouteTableConfig): string[] {
  const a = table.auth;
  const ids = a ? Object.values(a.identityHeaders) : ['X-User-Id', 'X-User-Email', 'X-User-Roles'];
  const internal = a?.internalToken.enabled ? [a.internalToken.header] : [];
  return [...ids, ...internal, ...(a?.forward?.copyHeaders ?? [])].map((h) => h.toLowerCase());
}

function ownedReason(name: string, side: 'request' | 'response', identity: readonly string[]): string | null {
  const n = name.toLowerCase();
  if (n.startsWith('x-strangler-')) return 'the gateway sets X-Strangler-* headers itself';
  if (side === 'request' && identity.includes(n)) return 'it carries the verified identity, set only by single login';
  const owned = side === 'request' ? OWNED_REQUEST : OWNED_RESPONSE;
  if (owned.includes(n)) return 'the gateway sets it (framing, forwarding, tracing or the request id)';
  return null;
}

export function checkRouteRules(table: RouteTableConfig, map: SourceMap): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const identity = identityHeaders(table);

  const checkEdits = (where: Array<string | number>, label: string, edits: HeaderEdits | undefined, side: 'request' | 'response', known: ReadonlySet<string>) => {
    if (edits === undefined) return;
    for (const [name, value] of Object.entries(edits.set)) {
      const why = ownedReason(name, side, identity);
      if (why !== null) problems.push(map.problem([...where, 'set', name], `${label}: ${name} cannot be set here: ${why}`));
      const t = parseValueTemplate(value);
      if (typeof t === 'string') problems.push(map.problem([...where, 'set', name], `${label}: ${t}`));
      else for (const ref of references(t)) if (!known.has(ref)) problems.push(map.problem([...where, 'set', name], `${label}: {${ref}} is not a parameter of this route${hint(known)}`));
    }
    edits.remove.forEach((name, j) => {
      const why = ownedReason(name, side, identity);
      if (why !== null) problems.push(map.problem([...where, 'remove', j], `${label}: ${name} cannot be removed here: ${why}`));
    });
  };

  for (const [name, u] of Object.entries(table.upstreams)) {
    const none = new Set(['requestId']);
    checkEdits(['upstreams', name, 'requestHeaders'], `upstreams.${name}.requestHeaders`, u.requestHeaders, 'request', none);
    checkEdits(['upstreams', name, 'responseHeaders'], `upstreams.${name}.responseHeaders`, u.responseHeaders, 'response', none);
  }

  const templates: Array<{ i: number; route: RouteConfig; template: PathTemplate; key: string }> = [];
  table.routes.forEach((route: RouteConfig | undefined, i) => {
    if (route === undefined) return;
    const at = (...keys: Array<string | number>) => ['routes', i, ...keys];
    const label = `routes[${i}] (${route.name})`;

    const actions = (['upstream', 'redirect', 'respond'] as const).filter((k) => route[k] !== undefined);
    if (actions.length !== 1) {
      problems.push(map.problem(actions.length > 1 ? at(actions[1]!) : ['routes', i], `${label}: give exactly one of upstream, redirect or respond${actions.length > 1 ? ` (this route has ${actions.join(' and ')})` : ''}`));
    }
    if (route.upstream === undefined) {
      for (const key of ['canary', 'shadow', 'fallback', 'rewrite', 'query', 'stripPrefix', 'requestHeaders', 'timeoutMs', 'retry'] as const) {
        if (route[key] !== undefined) problems.push(map.problem(at(key), `${label}: ${key} needs an upstream; a route that redirects or answers by itself sends nothing upstream`));
      }
    }

    // Parameters: the path template's, then those captured by conditions.
    const params = new Set<string>(['requestId']);
    if (isTemplate(route.path)) {
      const t = parseTemplate(route.path);
      if (typeof t === 'string') problems.push(map.problem(at('path'), `${label}: path "${route.path}": ${t}`));
      else {
        for (const p of t.params) params.add(p);
        const bad = t.segments.find((s) => 'literal' in s && (s.literal === '.' || s.literal === '..' || s.literal.includes('%2F') || s.literal.includes('%2f')));
        if (bad !== undefined) problems.push(map.problem(at('path'), `${label}: path "${route.path}" is not in normal form`));
        templates.push({ i, route, template: t, key: conditionKey(route) });
      }
    }
    for (const kind of ['headers', 'query'] as const) {
      for (const [name, value] of Object.entries(route.match?.[kind] ?? {})) {
        const c = parseCondition(kind === 'headers' ? 'header' : 'query', name, value);
        if (typeof c === 'string') problems.push(map.problem(at('match', kind, name), `${label}: match.${kind}.${name}: ${c}`));
        else if ('param' in c.test) {
          if (params.has(c.test.param)) problems.push(map.problem(at('match', kind, name), `${label}: parameter "${c.test.param}" is captured twice`));
          params.add(c.test.param);
        }
      }
    }

    if (route.rewrite !== undefined) {
      if (route.stripPrefix !== undefined) problems.push(map.problem(at('rewrite'), `${label}: rewrite and stripPrefix cannot be combined (the rewrite already says the whole upstream path)`));
      if (route.canary?.stripPrefix !== undefined) problems.push(map.problem(at('canary', 'stripPrefix'), `${label}: with rewrite, the canary side gets the rewritten path too; remove canary.stripPrefix`));
      if (route.shadow?.stripPrefix !== undefined) problems.push(map.problem(at('shadow', 'stripPrefix'), `${label}: with rewrite, the shadow side gets the rewritten path too; remove shadow.stripPrefix`));
      refsKnown(route.rewrite, at('rewrite'), `${label}: rewrite`, params);
    }
    for (const [name, value] of Object.entries(route.query?.set ?? {})) refsKnown(value, at('query', 'set', name), `${label}: query.set.${name}`, params);
    if (route.redirect !== undefined) refsKnown(route.redirect.to, at('redirect', 'to'), `${label}: redirect.to`, params);
    checkEdits(at('requestHeaders'), `${label}: requestHeaders`, route.requestHeaders, 'request', params);
    checkEdits(at('responseHeaders'), `${label}: responseHeaders`, route.responseHeaders, 'response', params);
  });

  // Two templates that would match the same paths with the same precedence and conditions: the matcher could not choose.
  const bySize = new Map<string, typeof templates>();
  for (const t of templates) {
    const k = `${t.template.rest ? 'rest' : 'whole'}:${t.template.segments.length}:${t.template.literalCount}:${t.key}`;
    const list = bySize.get(k) ?? [];
    for (const other of list) {
      if (ambiguous(other.template, t.template)) {
        problems.push(map.problem(['routes', t.i, 'path'], `routes[${t.i}] (${t.route.name}): path "${t.route.path}" matches the same requests as routes[${other.i}] (${other.route.name}) "${other.route.path}" with the same precedence; make one more specific (a literal segment, a constraint, a condition)`));
        break;
      }
    }
    list.push(t);
    bySize.set(k, list);
  }
  return problems;

  function refsKnown(text: string, where: Array<string | number>, label: string, known: ReadonlySet<string>): void {
    const t = parseValueTemplate(text);
    if (typeof t === 'string') {
      problems.push(map.problem(where, `${label}: ${t}`));
      return;
    }
    for (const ref of references(t)) if (!known.has(ref)) problems.push(map.problem(where, `${label}: {${ref}} is not a parameter of this route${hint(known)}`));
  }
}

function hint(known: ReadonlySet<string>): string {
  const names = [...known].filter((k) => k !== 'requestId');
  return names.length === 0 ? ' (it captures none; {requestId} is always there)' : ` (it captures ${names.map((n) => `{${n}}`).join(', ')}; {requestId} is always there)`;
}

/** The conditions besides the path, as a key: templates tie only under the same ones. */
function conditionKey(r: RouteConfig): string {
  return JSON.stringify([r.host ?? '', [...(r.methods ?? [])].sort(), r.match?.headers ?? {}, r.match?.query ?? {}]);
}
