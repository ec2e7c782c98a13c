import { BlockList, isIP } from 'node:net';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { GATEWAY_OWNED } from '../core/ownedHeaders';

/** RFC 9110 §7.6.1 hop-by-hop headers, plus the non-standard ones still seen in the wild. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** FILTERED_LENGTH[n]: some response header the gateway drops has a name n characters long. */
const FILTERED_LENGTH: readonly boolean[] = (() => {
  const lengths = [...HOP_BY_HOP, 'x-request-id'].map((n) => n.length);
  return Array.from({ length: Math.max(...lengths) + 1 }, (_, n) => lengths.includes(n));
})();

export interface ForwardingPolicy {
  /** Whether the direct peer may tell us who the client is. */
  trusts(peer: string): boolean;
  /** Lower-case names the client must never set (matched with `_` read as `-`). */
  readonly owned: ReadonlySet<string>;
}

export function forwardingPolicy(trustProxy: readonly string[], extraOwned: readonly string[] = []): ForwardingPolicy {
  const list = new BlockList();
  for (const entry of trustProxy) {
    const [ip, bits] = entry.split('/') as [string, string | undefined];
    const family = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(ip, family);
    else list.addSubnet(ip, Number(bits), family);
  }
  const owned = new Set([...GATEWAY_OWNED, ...extraOwned.map((h) => h.toLowerCase().replace(/_/g, '-'))]);
  const none = trustProxy.length === 0;
  return {
    owned,
    trusts(peer: string): boolean {
      if (none || !peer) return false;
      const v4mapped = peer.startsWith('::ffff:') && isIP(peer.slice(7)) === 4;
      return v4mapped ? list.check(peer.slice(7), 'ipv4') : list.check(peer, isIP(peer) === 6 ? 'ipv6' : 'ipv4');
    },
  };
}

/**
 * Never removable through `Connection`: deleting message framing would let a
 * body reach the upstream unframed, to be read there as a second request
 * (request smuggling past routing and auth).
 */
const NOT_NAMEABLE = new Set(['upgrade', 'transfer-encoding', 'content-length', 'host']);

/** Removes hop-by-hop headers, including every header the Connection header names. */
function stripHopByHop(h: IncomingHttpHeaders, keepUpgrade: boolean): void {
  const conn = h.connection;
  if (conn !== undefined) {
    for (const token of conn.split(',')) {
      const name = token.trim().toLowerCase();
      if (name && !NOT_NAMEABLE.has(name)) delete h[name];
    }
  }
  if (!keepUpgrade) {
    if (conn !== undefined) delete h.connection;
    if (h.upgrade !== undefined) delete h.upgrade;
  } else {
    h.connection = 'upgrade';
  }
  // Looked up before deleting: a read is inline-cached, a delete is a runtime call even when the header is absent.
  if (h['keep-alive'] !== undefined) delete h['keep-alive'];
  if (h['proxy-connection'] !== undefined) delete h['proxy-connection'];
  if (h['proxy-authorization'] !== undefined) delete h['proxy-authorization'];
  if (h['proxy-authenticate'] !== undefined) delete h['proxy-authenticate'];
  // TE is hop-by-hop; `trailers` alone is passed on when the client asked for it: the gateway relays trailer fields.
  if (h.te !== undefined) {
    if (/(^|,)\s*trailers\s*(;|,|$)/i.test(String(h.te))) h.te = 'trailers';
    else delete h.te;
  }
  if (h.trailer !== undefined) delete h.trailer;
  // Framing is redone for the next hop: Node re-chunks a body it de-chunked.
  if (h['transfer-encoding'] !== undefined) h['transfer-encoding'] = 'chunked';
  // The gateway answered `100 Continue` itself when the client asked.
  if (h.expect !== undefined) delete h.expect;
}

/**
 * Rewrites the request's headers in place into what the upstream sees. Returns
 * false when the request must be refused (a transfer coding other than chunked).
 */
export function prepareUpstreamHeaders(
  req: IncomingMessage,
  policy: ForwardingPolicy,
  requestId: string,
  traceparent: string | undefined,
  upgrade: boolean,
): boolean {
  const h = req.headers;
  const te = h['transfer-encoding'];
  if (te !== undefined && te.trim().toLowerCase() !== 'chunked') return false;
  stripHopByHop(h, upgrade);

  const peer = req.socket.remoteAddress ?? '';
  const trusted = policy.trusts(peer);
  const priorFor = trusted ? h['x-forwarded-for'] : undefined;
  const priorProto = trusted ? h['x-forwarded-proto'] : undefined;
  const priorHost = trusted ? h['x-forwarded-host'] : undefined;
  // Drop every client-sent copy of a gateway-owned header, whatever its spelling.
  for (const name in h) {
    const canonical = name.indexOf('_') === -1 ? name : name.replace(/_/g, '-');
    if (policy.owned.has(canonical)) delete h[name];
  }
  h['x-forwarded-for'] = priorFor ? `${priorFor}, ${peer}` : peer;
  h['x-forwarded-proto'] = priorProto ?? ((req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http');
  const host = priorHost ?? h.host;
  if (host !== undefined) h['x-forwarded-host'] = host;
  h['x-request-id'] = requestId;
  if (traceparent !== undefined) h.traceparent = traceparent;
  return true;
}

/**
 * The upstream's response headers as a flat [name, value, ...] list for
 * `writeHead`, without hop-by-hop headers and with the gateway's request id.
 * Raw headers keep their case and repeated headers (Set-Cookie) intact.
 */
export function responseHeaders(raw: readonly string[], requestId: string): string[] {
  let out: string[] = [];
  let named: string[] | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Only names as long as a hop-by-hop header or X-Request-Id need a closer look (Server, Date,
    // Content-Length... pass without being lower-cased).
    if (name.length >= FILTERED_LENGTH.length || !FILTERED_LENGTH[name.length]) {
      out.push(name, raw[i + 1]!);
      continue;
    }
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') named = connectionTokens(raw[i + 1]!, named);
      continue;
    }
    if (lower === 'x-request-id') continue;
    out.push(name, raw[i + 1]!);
  }
  if (named !== null) {
    const filtered: string[] = [];
    for (let i = 0; i < out.length; i += 2) {
      if (!named.includes(out[i]!.toLowerCase())) filtered.push(out[i]!, out[i + 1]!);
    }
    out = filtered;
  }
  // Added after the Connection filter: an upstream cannot name the gateway's own header away.
  out.push('X-Request-Id', requestId);
  return out;
}

/**
 * Puts a stripped prefix back where an upstream mounted under it names its own
 * paths (nginx's `proxy_redirect` and `proxy_cookie_path`): an absolute-path
 * `Location` (`/hello` -> `/svc/hello`) or one on the upstream's own origin,
 * and the `Path` of `Set-Cookie`. Edits the flat header list in place.
 */
export function restorePrefix(headers: string[], prefix: string, location: boolean, cookiePath: boolean, upstreamOrigins: readonly string[]): void {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (location && name.length === 8 && name.toLowerCase() === 'location') headers[i + 1] = restoreLocation(headers[i + 1]!, prefix, upstreamOrigins);
    else if (cookiePath && name.length === 10 && name.toLowerCase() === 'set-cookie') headers[i + 1] = restoreCookiePath(headers[i + 1]!, prefix);
  }
}

function restoreLocation(value: string, prefix: string, origins: readonly string[]): string {
  let path: string | undefined;
  if (value.startsWith('/') && !value.startsWith('//')) path = value;
  else if (/^https?:\/\//i.test(value)) {
    // Compared parsed: scheme and host case, default ports.
    let url: URL | undefined;
    try {
      url = new URL(value);
    } catch {
      return value;
    }
    if (origins.includes(url.origin)) path = url.pathname + url.search + url.hash;
  }
  if (path === undefined) return value;
  return underPrefix(path, prefix) ? path : prefix + path;
}

/** Already under the prefix (`/svc`, `/svc/…`, `/svc?…`, `/svc#…`): left as it is. */
function underPrefix(path: string, prefix: string): boolean {
  if (!path.startsWith(prefix)) return false;
  const next = path.charCodeAt(prefix.length);
  return Number.isNaN(next) || next === 0x2f || next === 0x3f || next === 0x23;
}

/** Every Path attribute (RFC 6265 §5.3 uses the last one), spaces around `=` allowed. */
const COOKIE_PATH = /(;\s*path\s*=\s*)(\/[^;]*)/gi;

function restoreCookiePath(value: string, prefix: string): string {
  return value.replace(COOKIE_PATH, (_m, attr: string, path: string) => {
    const p = path.trimEnd();
    if (underPrefix(p, prefix)) return `${attr}${path}`;
    return `${attr}${p === '/' ? prefix : prefix + p}`;
  });
}

function connectionTokens(value: string, into: string[] | null): string[] | null {
  // The common answers name no header: skip the split.
  if (value.length <= 10) {
    const v = value.toLowerCase();
    if (v === 'keep-alive' || v === 'close') return into;
  }
  for (const token of value.split(',')) {
    const t = token.trim().toLowerCase();
    if (t && t !== 'close' && t !== 'keep-alive') (into ??= []).push(t);
  }
  return into;
}
