/**
 * Request path normalisation. It runs before matching, and the upstream is sent
 * the normalised path, so a request can only reach what its path routes to:
 * `/api/users/../../admin` is matched (and forwarded) as `/admin`.
 *
 * Rules (RFC 3986 §6.2.2 plus what servers behind us are known to reinterpret):
 * - percent-escapes of unreserved characters are decoded (`%2e` is `.`), other
 *   escapes are kept with upper-case hex; malformed escapes are refused;
 * - `%2F` is refused, or decoded to `/` when the table says so;
 * - `\`, `%5C`, NUL and control characters, and `;` parameters on dot segments
 *   (`..;/`, which Java servers read as `..`) are refused;
 * - empty segments (`//`) are merged, `.` segments removed, `..` segments
 *   resolved; going above the root is refused.
 * A refused path answers 400. Returns the normal form, or null when refused.
 */
export function normalizePath(path: string, decodeSlashes = false): string | null {
  if (isAlreadyNormal(path)) return path;
  return normalizeSlow(path, decodeSlashes);
}

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;
const BACKSLASH = 0x5c;

/** Fast path for the common case: printable ASCII, no escapes, no `//`, no dot segments. */
function isAlreadyNormal(path: string): boolean {
  const n = path.length;
  if (n === 0 || path.charCodeAt(0) !== SLASH) return false;
  let prev = SLASH;
  for (let i = 1; i < n; i++) {
    const c = path.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || c === PERCENT || c === BACKSLASH || c === 0x23 /* # */) return false;
    if (prev === SLASH && (c === SLASH || c === DOT)) return false;
    prev = c;
  }
  return true;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

function isUnreserved(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === DOT || c === 0x5f || c === 0x7e
  );
}

const HEX = '0123456789ABCDEF';

function normalizeSlow(path: string, decodeSlashes: boolean): string | null {
  if (path.length === 0 || path.charCodeAt(0) !== SLASH) return null;
  // Pass 1: decode what is safe to decode, refuse what is ambiguous. `/` marks separators.
  let decoded = '';
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || c === BACKSLASH || c === 0x23) return null;
    if (c !== PERCENT) {
      decoded += path[i];
      continue;
    }
    if (i + 2 >= path.length) return null;
    const hi = hexValue(path.charCodeAt(i + 1));
    const lo = hexValue(path.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return null;
    const byte = hi * 16 + lo;
    i += 2;
    if (byte < 0x20 || byte === 0x7f || byte === BACKSLASH) return null;
    if (byte === SLASH) {
      if (!decodeSlashes) return null;
      decoded += '/';
    } else if (isUnreserved(byte)) {
      decoded += String.fromCharCode(byte);
    } else {
      decoded += '%' + HEX[hi] + HEX[lo];
    }
  }
  // Pass 2: resolve segments.
  const parts = decoded.split('/');
  const out: string[] = [];
  let trailingSlash = false;
  for (let i = 1; i < parts.length; i++) {
    const seg = parts[i]!;
    const last = i === parts.length - 1;
    if (seg === '' || seg === '.') {
      if (last) trailingSlash = true;
      continue;
    }
    if (seg === '..') {
      if (out.length === 0) return null;
      out.pop();
      if (last) trailingSlash = true;
      continue;
    }
    if (seg.startsWith('..;') || seg.startsWith('.;')) return null;
    out.push(seg);
    trailingSlash = false;
  }
  if (out.length === 0) return '/';
  return '/' + out.join('/') + (trailingSlash ? '/' : '');
}

/** Splits a request target into path and query (`?` included), without allocating for the query when absent. */
export function splitTarget(url: string): [path: string, query: string] {
  const q = url.indexOf('?');
  return q === -1 ? [url, ''] : [url.slice(0, q), url.slice(q)];
}

/**
 * The path as routing sees it: `;parameters` (and `%3B…`) removed from every
 * segment. Java servers ignore them (`/admin;x=1` serves `/admin`), so a route
 * must not be escaped by adding one. Takes a normalised path (escapes upper-case).
 */
export function pathForMatching(path: string): string {
  if (path.indexOf(';') === -1 && path.indexOf('%3B') === -1) return path;
  const segs = path.split('/');
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i]!;
    let cut = s.indexOf(';');
    const enc = s.indexOf('%3B');
    if (enc !== -1 && (cut === -1 || enc < cut)) cut = enc;
    if (cut !== -1) segs[i] = s.slice(0, cut);
  }
  return segs.join('/') || '/';
}
