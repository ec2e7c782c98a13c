import { isIP } from 'node:net';
import { normalizePath } from '../core/path';
import type { ConfigProblem, SourceMap } from './load';
import type { RouteTableConfig } from './schema';
import { checkRouteRules } from './routeRules';
import { isTemplate } from '../routing/template';

/** Checks that need the whole table: references, duplicates, path forms. */
export function checkSemantics(table: RouteTableConfig, map: SourceMap): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const upstreamNames = Object.keys(table.upstreams);
  const seenNames = new Map<string, number>();
  const seenMatches = new Map<string, number>();

  const health = table.server.healthPath;
  if (normalizePath(health) !== health) {
    problems.push(map.problem(['server', 'healthPath'], `server.healthPath: "${health}" is not a normalised path`));
  }
  for (const [name, u] of Object.entries(table.upstreams)) {
    const paths = new Set((u.urls ?? []).map((x) => new URL(x).pathname.replace(/\/$/, '')));
    if (paths.size > 1) problems.push(map.problem(['upstreams', name, 'urls'], `upstreams.${name}.urls: every instance must have the same path`));
    // One connection pool (an http or an https agent) serves every instance.
    const schemes = new Set((u.urls ?? []).map((x) => new URL(x).protocol));
    if (schemes.size > 1) problems.push(map.problem(['upstreams', name, 'urls'], `upstreams.${name}.urls: every instance must use the same scheme (all http:// or all https://)`));
    if (u.tls !== undefined && !schemes.has('https:')) problems.push(map.problem(['upstreams', name, 'tls'], `upstreams.${name}.tls: TLS settings need https:// URLs`));
  }
  const server = table.server;
  if (server.tls === undefined) {
    if (server.redirectHttp !== undefined) problems.push(map.problem(['server', 'redirectHttp'], 'server.redirectHttp: redirects to https need server.tls'));
    if (server.hsts !== undefined) problems.push(map.problem(['server', 'hsts'], 'server.hsts: Strict-Transport-Security is sent only over HTTPS: it needs server.tls'));
  } else if (server.redirectHttp !== undefined && server.redirectHttp.port !== 0 && server.redirectHttp.port === server.port) {
    problems.push(map.problem(['server', 'redirectHttp', 'port'], `server.redirectHttp.port: ${server.port} is the TLS port itself`));
  }
  // Node refuses to start a server whose header deadline is longer than its whole-request deadline.
  if (server.requestTimeoutMs > 0 && server.headersTimeoutMs > server.requestTimeoutMs) {
    problems.push(
      map.problem(
        ['server', 'requestTimeoutMs'],
        `server.requestTimeoutMs: ${server.requestTimeoutMs} is shorter than server.headersTimeoutMs (${server.headersTimeoutMs}); the headers are part of the request, so it must be at least as long, or 0 to disable it`,
      ),
    );
  }
  const authPolicyUsed = table.routes.some((r) => r && ((r.auth ?? table.auth?.default ?? 'none') !== 'none' || r.roles));
  if (authPolicyUsed && !table.auth?.jwt && !table.auth?.forward) {
    problems.push(map.problem(table.auth ? ['auth'] : ['routes'], 'auth: routes ask for authentication but neither auth.jwt nor auth.forward is configured'));
  }
  const admin = table.admin;
  if (admin && admin.token === undefined && !isLoopback(admin.host)) {
    problems.push(map.problem(['admin', 'host'], `admin.host: "${admin.host}" is reachable from other machines, so admin.token is required`));
  }
  (table.migration.legacy ?? []).forEach((u, i) => {
    if (!upstreamNames.includes(u)) problems.push(map.problem(['migration', 'legacy', i], `migration.legacy: "${u}" is not a declared upstream (declared: ${upstreamNames.join(', ')})`));
  });
  table.server.trustProxy.forEach((entry, i) => {
    if (!isIpOrCidr(entry)) problems.push(map.problem(['server', 'trustProxy', i], `server.trustProxy: "${entry}" is not an IP address or CIDR`));
  });

  table.routes.forEach((route: RouteTableConfig['routes'][number] | undefined, i) => {
    // A route that failed its schema check is absent from a partial table: its problems are already reported.
    if (route === undefined) return;
    const at = (key: string) => ['routes', i, key];
    const label = `routes[${i}] (${route.name})`;
    /** A canary or a shadow: a declared upstream other than the route's own, and a stripPrefix that fits the path. */
    const checkSide = (key: 'canary' | 'shadow', side: { upstream: string; stripPrefix?: string | undefined }, other: string) => {
      if (!(side.upstream in table.upstreams)) {
        const hint = closest(side.upstream, upstreamNames);
        problems.push(map.problem([...at(key), 'upstream'], `${label}: unknown ${key} upstream "${side.upstream}"${hint ? ` (did you mean "${hint}"?)` : ''}`));
      } else if (side.upstream === route.upstream) {
        problems.push(map.problem([...at(key), 'upstream'], `${label}: ${key} upstream must differ from ${other}`));
      }
      if (side.stripPrefix !== undefined && !isSegmentPrefix(side.stripPrefix, route.path)) {
        problems.push(map.problem([...at(key), 'stripPrefix'], `${label}: ${key}.stripPrefix "${side.stripPrefix}" is not a segment prefix of path "${route.path}"`));
      }
    };

    const first = seenNames.get(route.name);
    if (first !== undefined) {
      problems.push(map.problem(at('name'), `${label}: duplicate route name "${route.name}" (first used by routes[${first}])`));
    } else {
      seenNames.set(route.name, i);
    }

    if (route.upstream !== undefined && !(route.upstream in table.upstreams)) {
      const hint = closest(route.upstream, upstreamNames);
      problems.push(
        map.problem(at('upstream'), `${label}: unknown upstream "${route.upstream}"${hint ? ` (did you mean "${hint}"?)` : ''}; declared: ${upstreamNames.join(', ')}`),
      );
    }

    if (route.fallback !== undefined) {
      if (!(route.fallback in table.upstreams)) {
        const hint = closest(route.fallback, upstreamNames);
        problems.push(map.problem(at('fallback'), `${label}: unknown fallback upstream "${route.fallback}"${hint ? ` (did you mean "${hint}"?)` : ''}`));
      } else if (route.fallback === route.upstream) {
        problems.push(map.problem(at('fallback'), `${label}: fallback must differ from upstream`));
      }
    }

    if (route.canary !== undefined) {
      const c = route.canary;
      checkSide('canary', c, 'the primary');
      if (c.gate !== undefined && route.shadow === undefined) {
        problems.push(map.problem([...at('canary'), 'gate'], `${label}: canary.gate needs a shadow on the route (the gate reads its comparisons)`));
      }
      if (c.steps && c.steps.some((s, j) => j > 0 && s < c.steps![j - 1]!)) {
        problems.push(map.problem([...at('canary'), 'steps'], `${label}: canary.steps must not go down`));
      }
    }

    if (route.shadow !== undefined) {
      checkSide('shadow', route.shadow, "the route's upstream");
    }

    const normal = isTemplate(route.path) ? route.path : normalizePath(route.path);
    if (normal !== route.path || (route.path.length > 1 && route.path.endsWith('/') && !route.exact)) {
      const suggestion = normal === null ? '' : ` (write "${canonicalPrefix(normal, route.exact)}")`;
      problems.push(map.problem(at('path'), `${label}: path "${route.path}" is not in normal form${suggestion}`));
    }

    if (route.stripPrefix !== undefined && !isSegmentPrefix(route.stripPrefix, route.path)) {
      problems.push(map.problem(at('stripPrefix'), `${label}: stripPrefix "${route.stripPrefix}" is not a segment prefix of path "${route.path}"`));
    }

    if (route.methods) {
      const dup = route.methods.find((m, j) => route.methods!.indexOf(m) !== j);
      if (dup) problems.push(map.problem(at('methods'), `${label}: method ${dup} is listed twice`));
    }

    const matchKey = [route.exact ? 'exact' : 'prefix', route.path, route.host ?? '*', route.methods ? [...route.methods].sort().join(',') : '*'].join(' ');
    const twin = seenMatches.get(matchKey);
    if (twin !== undefined) {
      problems.push(map.problem(at('path'), `${label}: matches exactly the same requests as routes[${twin}] (${table.routes[twin]?.name})`));
    } else {
      seenMatches.set(matchKey, i);
    }
  });
  return [...problems, ...checkRouteRules(table, map)];
}

function canonicalPrefix(path: string, exact: boolean): string {
  return !exact && path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

export function isSegmentPrefix(prefix: string, path: string): boolean {
  if (prefix === '/') return true;
  const p = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  return path === p || path.startsWith(p + '/');
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function isIpOrCidr(entry: string): boolean {
  const [ip, bits, extra] = entry.split('/');
  if (extra !== undefined || !ip) return false;
  const family = isIP(ip);
  if (family === 0) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return /^\d+$/.test(bits) && n >= 0 && n <= (family === 4 ? 32 : 128);
}

/** The closest name by edit distance, when it is close enough to be a likely typo. */
export function closest(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = c;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j]!;
      row[j] = Math.min(up + 1, row[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return row[b.length]!;
}
