import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';

/**
 * The parallel run's comparison of two complete answers to the same request:
 * the primary's (what the client got) and the shadow's. Status, a chosen set
 * of headers, and the bodies, decoded first (gzip, br, deflate); JSON bodies
 * structurally (key order never matters, numbers as numbers), each difference
 * a JSON path; other text exactly; anything else by SHA-256.
 */

export interface CompareOptions {
  /** Lower-case names of the response headers compared; `*`: every header either side sent, except `ignoreHeaders`. */
  readonly headers: readonly string[] | '*';
  /** Lower-case names never compared (with `*`: the volatile defaults and the route's compare.ignoreHeaders). */
  readonly ignoreHeaders: ReadonlySet<string>;
  /** JSON paths (`$.generatedAt`, `$.items[*].etag`) whose values, and everything under them, are not compared. */
  readonly ignore: readonly string[];
  /** JSON paths of arrays compared as multisets (order ignored). */
  readonly unordered: readonly string[];
  /** Decoded bodies larger than this are not compared. */
  readonly maxBodyBytes: number;
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The whole body as received (possibly encoded). */
  body: Buffer;
}

export type DiffKind = 'changed' | 'missing' | 'extra' | 'type';

export interface Difference {
  /** Where, concretely: `$.items[3].price`, `status`, `header:content-type`, `body`. */
  path: string;
  /** The same with array indices collapsed (`$.items[*].price`): what is counted per route. */
  field: string;
  kind: DiffKind;
  primary?: unknown;
  shadow?: unknown;
}

export type Comparison = { outcome: 'match' | 'mismatch'; differences: Difference[] } | { outcome: 'too-large'; differences: [] };

/**
 * Response headers that differ between any two answers, even from the same
 * service: never compared under `headers: "*"`. Encodings and framing are not
 * differences (bodies are compared decoded); Set-Cookie is compared by cookie
 * names, not values.
 */
export const VOLATILE_HEADERS: readonly string[] = [
  'date',
  'server',
  'x-powered-by',
  'x-request-id',
  'traceparent',
  'tracestate',
  'x-response-time',
  'age',
  'expires',
  'via',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'content-encoding',
];

/** The compare options of a route's `compare.headers` and `compare.ignoreHeaders`. */
export function headerSelection(headers: readonly string[] | '*', ignoreHeaders: readonly string[]): Pick<CompareOptions, 'headers' | 'ignoreHeaders'> {
  const ignored = ignoreHeaders.map((h) => h.toLowerCase());
  if (headers === '*') return { headers: '*', ignoreHeaders: new Set([...VOLATILE_HEADERS, ...ignored]) };
  return { headers: headers.map((h) => h.toLowerCase()).filter((h) => !ignored.includes(h)), ignoreHeaders: new Set(ignored) };
}

export function compareAnswers(primary: Answer, shadow: Answer, opts: CompareOptions): Comparison {
  const differences: Difference[] = [];
  if (primary.status !== shadow.status) differences.push({ path: 'status', field: 'status', kind: 'changed', primary: primary.status, shadow: shadow.status });
  const names = opts.headers === '*' ? [...new Set([...Object.keys(primary.headers), ...Object.keys(shadow.headers)])].filter((n) => !opts.ignoreHeaders.has(n)).sort() : opts.headers;
  for (const name of names) {
    const a = name === 'set-cookie' && opts.headers === '*' ? cookieNames(primary.headers[name]) : headerValue(primary.headers[name]);
    const b = name === 'set-cookie' && opts.headers === '*' ? cookieNames(shadow.headers[name]) : headerValue(shadow.headers[name]);
    if (a === b) continue;
    const field = `header:${name}`;
    differences.push({ path: field, field, kind: a === undefined ? 'extra' : b === undefined ? 'missing' : 'changed', primary: a, shadow: b });
  }
  const a = decode(primary, opts.maxBodyBytes);
  const b = decode(shadow, opts.maxBodyBytes);
  if (a === undefined || b === undefined) return { outcome: 'too-large', differences: [] };
  compareBodies(a, b, isJson(primary.headers) && isJson(shadow.headers), isText(primary.headers), opts, differences);
  return { outcome: differences.length === 0 ? 'match' : 'mismatch', differences };
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

/** `sid=abc; Path=/`, `theme=dark` -> `sid, theme`: which cookies are set, not their (per-session) values. */
function cookieNames(v: string | string[] | undefined): string | undefined {
  if (v === undefined) return undefined;
  return (Array.isArray(v) ? v : [v])
    .map((c) => c.slice(0, c.indexOf('=') === -1 ? c.length : c.indexOf('=')).trim())
    .sort()
    .join(', ');
}

function isJson(h: IncomingHttpHeaders): boolean {
  const t = h['content-type'];
  return t !== undefined && /[/+]json\b/i.test(t);
}

function isText(h: IncomingHttpHeaders): boolean {
  const t = h['content-type'];
  return t !== undefined && /^(text\/|application\/(xml|javascript|x-www-form-urlencoded))|[/+]xml\b/i.test(t);
}

/** The body as the application wrote it; undefined when it cannot be decoded within the limit. */
function decode(answer: Answer, max: number): Buffer | undefined {
  const coding = String(answer.headers['content-encoding'] ?? '').trim().toLowerCase();
  try {
    // maxOutputLength: a small compressed body cannot expand past the limit (a decompression bomb).
    if (coding === 'gzip' || coding === 'x-gzip') return gunzipSync(answer.body, { maxOutputLength: max });
    if (coding === 'br') return brotliDecompressSync(answer.body, { maxOutputLength: max });
    if (coding === 'deflate') return inflateSync(answer.body, { maxOutputLength: max });
  } catch {
    return undefined;
  }
  return answer.body.length > max ? undefined : answer.body;
}

function compareBodies(a: Buffer, b: Buffer, json: boolean, text: boolean, opts: CompareOptions, out: Difference[]): void {
  if (json) {
    const pa = parse(a);
    const pb = parse(b);
    if (pa.ok && pb.ok) return compareJson(pa.value, pb.value, '$', '$', new Matcher(opts), out);
  }
  if (json || text) {
    const sa = a.toString('utf8');
    const sb = b.toString('utf8');
    if (sa !== sb) out.push({ path: 'body', field: 'body', kind: 'changed', primary: sa, shadow: sb });
    return;
  }
  if (!a.equals(b)) out.push({ path: 'body', field: 'body', kind: 'changed', primary: sha256(a), shadow: sha256(b) });
}

function parse(body: Buffer): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(body.toString('utf8')) };
  } catch {
    return { ok: false };
  }
}

function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

/** Ignore and unordered paths, matched on the collapsed path; an ignored path covers its whole subtree. */
class Matcher {
  private readonly ignore: readonly string[];
  private readonly unorderedSet: ReadonlySet<string>;
  constructor(opts: CompareOptions) {
    this.ignore = opts.ignore;
    this.unorderedSet = new Set(opts.unordered);
  }
  ignored(field: string): boolean {
    for (const p of this.ignore) if (field === p || field.startsWith(p + '.') || field.startsWith(p + '[')) return true;
    return false;
  }
  unordered(field: string): boolean {
    return this.unorderedSet.has(field);
  }
}

function kindOf(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function child(path: string, key: string): string {
  return IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function compareJson(a: unknown, b: unknown, path: string, field: string, m: Matcher, out: Difference[]): void {
  if (m.ignored(field)) return;
  const ka = kindOf(a);
  const kb = kindOf(b);
  if (ka !== kb) return void out.push({ path, field, kind: 'type', primary: a, shadow: b });
  if (ka === 'array') {
    const xa = a as unknown[];
    const xb = b as unknown[];
    if (m.unordered(field)) return compareMultiset(xa, xb, path, field, out);
    const n = Math.max(xa.length, xb.length);
    for (let i = 0; i < n; i++) {
      const p = `${path}[${i}]`;
      const f = `${field}[*]`;
      if (i >= xb.length) out.push({ path: p, field: f, kind: 'missing', primary: xa[i] });
      else if (i >= xa.length) out.push({ path: p, field: f, kind: 'extra', shadow: xb[i] });
      else compareJson(xa[i], xb[i], p, f, m, out);
    }
    return;
  }
  if (ka === 'object') {
    const oa = a as Record<string, unknown>;
    const ob = b as Record<string, unknown>;
    for (const key of Object.keys(oa)) {
      const p = child(path, key);
      const f = child(field, key);
      if (!Object.hasOwn(ob, key)) {
        if (!m.ignored(f)) out.push({ path: p, field: f, kind: 'missing', primary: oa[key] });
      } else compareJson(oa[key], ob[key], p, f, m, out);
    }
    for (const key of Object.keys(ob)) {
      if (Object.hasOwn(oa, key)) continue;
      const f = child(field, key);
      if (!m.ignored(f)) out.push({ path: child(path, key), field: f, kind: 'extra', shadow: ob[key] });
    }
    return;
  }
  // Numbers as numbers (1.0 and 1 parse the same), strings, booleans, null.
  if (a !== b) out.push({ path, field, kind: 'changed', primary: a, shadow: b });
}

/** Arrays as multisets: elements compared by their canonical form (sorted keys). */
function compareMultiset(a: unknown[], b: unknown[], path: string, field: string, out: Difference[]): void {
  const counts = new Map<string, { n: number; value: unknown }>();
  for (const v of a) {
    const k = canonical(v);
    const c = counts.get(k);
    if (c) c.n++;
    else counts.set(k, { n: 1, value: v });
  }
  for (const v of b) {
    const k = canonical(v);
    const c = counts.get(k);
    if (c && c.n > 0) c.n--;
    else out.push({ path: `${path}[*]`, field: `${field}[*]`, kind: 'extra', shadow: v });
  }
  for (const { n, value } of counts.values()) for (let i = 0; i < n; i++) out.push({ path: `${path}[*]`, field: `${field}[*]`, kind: 'missing', primary: value });
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}
