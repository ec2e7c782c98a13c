import { readFileSync } from 'node:fs';
import { Document, isMap, isNode, isPair, isScalar, LineCounter, parseDocument, visit, type Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import { LogSchema, MigrationSchema, ReloadSchema, RouteSchema, RouteTableSchema, ServerSchema, StateSchema, UpstreamSchema, type RouteTableConfig, type StateConfig } from './schema';
import { checkSemantics } from './semantics';
import { loadContexts, readUpstreamTls } from '../tls/certificates';

import { formatProblem, type ConfigProblem } from './problem';

export { formatProblem, type ConfigProblem };

/** A route table that passed every check, with its version id (a content hash). */
export interface LoadedTable {
  config: RouteTableConfig;
  version: string;
  source: string;
  /** The YAML text, so a reload worker can diff against this version. */
  text: string;
}

export type LoadResult = { ok: true; table: LoadedTable } | { ok: false; problems: ConfigProblem[] };

export type PathKey = string | number;

/** Finds where a path in the document starts, for error messages. Unknown keys point at the key itself. */
export class SourceMap {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
    private readonly file: string,
  ) {}

  problem(path: readonly PathKey[], message: string, key?: string): ConfigProblem {
    let offset = this.offsetOf(path, key);
    if (offset < 0) offset = 0;
    const { line, col } = this.lines.linePos(offset);
    return { file: this.file, line, col, message };
  }

  private offsetOf(path: readonly PathKey[], key?: string): number {
    // Walk down as far as the document goes; report the deepest node that exists.
    let node: unknown = this.doc.contents;
    let best = rangeStart(node);
    for (const k of path) {
      const next = childOf(node, k);
      if (next === undefined) break;
      node = next.value ?? next.key;
      best = rangeStart(next.value) >= 0 ? rangeStart(next.value) : rangeStart(next.key);
    }
    if (key !== undefined && isMap(node)) {
      const pair = node.items.find((it) => isScalar(it.key) && String(it.key.value) === key);
      if (pair) return rangeStart(pair.key);
    }
    return best;
  }
}

function rangeStart(node: unknown): number {
  return isNode(node) && node.range ? node.range[0] : -1;
}

function childOf(node: unknown, k: PathKey): { key?: unknown; value?: unknown } | undefined {
  if (!isNode(node)) return undefined;
  const coll = node as YamlNode & { items?: unknown[] };
  if (!Array.isArray(coll.items)) return undefined;
  if (typeof k === 'number') {
    const item = coll.items[k];
    return item === undefined ? undefined : { value: item };
  }
  for (const it of coll.items) {
    if (isPair(it) && isScalar(it.key) && String(it.key.value) === k) return { key: it.key, value: it.value ?? it.key };
  }
  return undefined;
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\$\{/g;

/**
 * `${NAME}` and `${NAME:-default}` in any scalar value are replaced from the
 * environment; `$${` writes a literal `${`. An unset variable without a default is a problem.
 */
function interpolate(doc: Document, env: NodeJS.ProcessEnv, map: SourceMap, problems: ConfigProblem[]): void {
  visit(doc, {
    Scalar(key, node, path) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('$')) return;
      node.value = node.value.replace(ENV_REF, (whole: string, name?: string, fallback?: string) => {
        if (whole === '$${') return '${';
        const value = env[name!];
        if (value !== undefined && value !== '') return value;
        if (fallback !== undefined) return fallback;
        const offsetPath = yamlPathOf(path, node);
        problems.push(map.problem(offsetPath, `environment variable ${name} is not set`));
        return '';
      });
    },
  });
}

/** Rebuilds the key path of a visited node from the visitor's ancestor list. */
function yamlPathOf(ancestors: readonly unknown[], target: unknown): PathKey[] {
  const out: PathKey[] = [];
  const chain = [...ancestors, target];
  for (let i = 0; i < chain.length - 1; i++) {
    const parent = chain[i];
    const child = chain[i + 1];
    if (isPair(child) && isScalar(child.key)) out.push(String(child.key.value));
    else if (isNode(parent) && Array.isArray((parent as { items?: unknown[] }).items) && !isPair(child)) {
      const idx = (parent as unknown as { items: unknown[] }).items.indexOf(child);
      if (idx >= 0 && !isMap(parent)) out.push(idx);
    }
  }
  return out;
}

function zodProblems(error: z.ZodError, map: SourceMap): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const issue of error.issues) {
    const path = issue.path.filter((k): k is PathKey => typeof k === 'string' || typeof k === 'number');
    const where = path.length ? formatPath(path) : 'file';
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        out.push(map.problem(path, `${path.length ? where + '.' : ''}${key}: unknown key`, key));
      }
      continue;
    }
    out.push(map.problem(path, `${where}: ${describeIssue(issue)}`));
  }
  return out;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type') {
    const m = /received (\w+)/.exec(issue.message);
    if (m?.[1] === 'undefined') return `required ${issue.expected} is missing`;
    return `expected ${issue.expected}${m ? `, got ${m[1]}` : ''}`;
  }
  return issue.message;
}

function formatPath(path: readonly PathKey[]): string {
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('');
}

import { versionOf } from './version';

export { versionOf };

/** Parses and checks a route table's text. Every problem is reported, not just the first. */
export function loadTableText(source: string, file: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  const lines = new LineCounter();
  // logLevel error: a key that is a collection is a schema problem to report, not a process warning to print.
  const doc = parseDocument(source, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, logLevel: 'error' });
  const map = new SourceMap(doc, lines, file);
  const problems: ConfigProblem[] = [];
  for (const err of doc.errors) {
    const { line, col } = lines.linePos(err.pos[0]);
    problems.push({ file, line, col, message: `YAML: ${err.message.split('\n')[0]}` });
  }
  if (problems.length) return { ok: false, problems };
  if (doc.contents === null) {
    return { ok: false, problems: [{ file, line: 1, col: 1, message: 'the route table is empty' }] };
  }
  interpolate(doc, env, map, problems);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // An alias with no anchor before it (`*a`), or too many aliases: the parser reports it only here.
    return { ok: false, problems: [{ file, ...aliasPosition(doc, lines), message: `YAML: ${(err as Error).message}` }] };
  }
  const parsed = RouteTableSchema.safeParse(raw);
  if (!parsed.success) {
    // An unset variable also fails its schema check at the same place: report it once.
    const seen = new Set(problems.map((p) => `${p.line}:${p.col}`));
    problems.push(...zodProblems(parsed.error, map).filter((p) => !seen.has(`${p.line}:${p.col}`)));
    // Cross-reference checks still run on the parts that are well-formed, so one pass shows every problem.
    const partial = partialTable(raw);
    if (partial) problems.push(...checkSemantics(partial, map).filter((p) => !seen.has(`${p.line}:${p.col}`)));
  }
  if (!parsed.success || problems.length) return { ok: false, problems: byPosition(dedupe(problems)) };
  const semantic = [...checkSemantics(parsed.data, map), ...checkTlsFiles(parsed.data, map)];
  if (semantic.length) return { ok: false, problems: byPosition(semantic) };
  return { ok: true, table: { config: deepFreeze(parsed.data), version: versionOf(source), source: file, text: source } };
}

export function loadTableFile(file: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message;
    return { ok: false, problems: [{ file, line: 1, col: 1, message: `cannot read the route table: ${reason}` }] };
  }
  return loadTableText(source, file, env);
}

/** The well-formed parts of a table that failed its schema: routes that parse, every upstream name. */
function partialTable(raw: unknown): RouteTableConfig | undefined {
  if (!raw || typeof raw !== 'object') return undefined;
  const r = raw as { server?: unknown; upstreams?: unknown; routes?: unknown };
  if (!r.upstreams || typeof r.upstreams !== 'object' || !Array.isArray(r.routes)) return undefined;
  const server = ServerSchema.safeParse(r.server ?? {});
  const routes = r.routes.map((route) => RouteSchema.safeParse(route).data);
  // Names are kept (routes refer to them); an upstream whose settings fail the schema (null, a bad URL)
  // has its problems reported there, and stands here with no instances.
  const upstreams = Object.fromEntries(Object.entries(r.upstreams).map(([name, u]) => [name, UpstreamSchema.safeParse(u).data ?? { urls: [] }]));
  return {
    server: server.success ? server.data : ServerSchema.parse({}),
    upstreams: upstreams as RouteTableConfig['upstreams'],
    routes: routes as RouteTableConfig['routes'],
    log: LogSchema.parse({}),
    reload: ReloadSchema.parse({}),
    migration: MigrationSchema.safeParse((raw as { migration?: unknown }).migration ?? {}).data ?? MigrationSchema.parse({}),
    source: 'file',
  };
}

/** Where the first alias whose anchor is missing stands (else the start of the file). */
function aliasPosition(doc: ReturnType<typeof parseDocument>, lines: LineCounter): { line: number; col: number } {
  let at: number | undefined;
  visit(doc, {
    Alias(_key, node) {
      if (node.resolve(doc) === undefined && node.range) {
        at = node.range[0];
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return at === undefined ? { line: 1, col: 1 } : lines.linePos(at);
}

function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = formatProblem(p);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function byPosition(problems: ConfigProblem[]): ConfigProblem[] {
  return problems.sort((a, b) => a.line - b.line || a.col - b.col);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Top-level keys that belong to the process, not to the table a fleet shares: a table published to Redis must not hold them. */
export const PROCESS_KEYS = ['server', 'admin', 'log', 'state', 'source', 'reload'] as const;

export type SourcePeek =
  | { ok: true; source: 'file' }
  | { ok: true; source: 'redis'; redis: NonNullable<StateConfig['redis']> }
  | { ok: false; problems: ConfigProblem[] };

/**
 * Where a table file says its table comes from, read before the table is
 * whole: with `source: redis` the file holds only the process-level keys,
 * and `state.redis` says where the rest is.
 */
export function peekSource(file: string, env: NodeJS.ProcessEnv = process.env): SourcePeek {
  const local = peekLocal(file, env);
  if (!local.ok || local.source === 'file') return local.ok ? { ok: true, source: 'file' } : local;
  if (local.redis === undefined) return { ok: false, problems: [local.missing] };
  return { ok: true, source: 'redis', redis: local.redis };
}

/**
 * A local file's `source` and `state.redis`, read without checking the rest
 * (a file with `source: redis` has no routes): for the gateway's start, and
 * for `strangler pull/push --config`.
 */
export function peekLocal(file: string, env: NodeJS.ProcessEnv = process.env): { ok: true; source: 'file' | 'redis'; redis: NonNullable<StateConfig['redis']> | undefined; missing: ConfigProblem } | { ok: false; problems: ConfigProblem[] } {
  const none = { file, line: 1, col: 1, message: 'source: redis needs state.redis (where the table is kept)' };
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { ok: false, problems: [{ file, line: 1, col: 1, message: `cannot read the route table: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message}` }] };
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, logLevel: 'error' });
  // A file that does not parse is a file table: its load reports every problem.
  if (doc.errors.length > 0 || doc.contents === null) return { ok: true, source: 'file', redis: undefined, missing: none };
  const map = new SourceMap(doc, lines, file);
  const problems: ConfigProblem[] = [];
  interpolate(doc, env, map, problems);
  let raw: { source?: unknown; state?: unknown };
  try {
    raw = (doc.toJS({ maxAliasCount: 100 }) ?? {}) as typeof raw;
  } catch {
    return { ok: true, source: 'file', redis: undefined, missing: none };
  }
  const source = raw.source === 'redis' ? 'redis' : 'file';
  const state = StateSchema.safeParse(raw.state ?? {});
  if (source === 'redis' && problems.length) return { ok: false, problems };
  return { ok: true, source, redis: state.success ? state.data.redis : undefined, missing: map.problem(['source'], none.message) };
}

/**
 * A table text to publish to Redis: it must be a block mapping at the top
 * (it is read after the local file's process-level keys) without any of
 * them. Problems, or none.
 */
export function checkPublishable(text: string, file: string): ConfigProblem[] {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, logLevel: 'error' });
  if (doc.errors.length > 0) return [];
  const contents = doc.contents;
  if (!isMap(contents) || contents.flow) return [{ file, line: 1, col: 1, message: 'a table published to Redis must be a block mapping (key: value lines) at the top' }];
  const problems: ConfigProblem[] = [];
  for (const item of contents.items) {
    const key = isScalar(item.key) ? String(item.key.value) : '';
    if ((PROCESS_KEYS as readonly string[]).includes(key)) {
      const at = item.key && isScalar(item.key) && item.key.range ? lines.linePos(item.key.range[0]) : { line: 1, col: 1 };
      problems.push({ file, ...at, message: `"${key}" is a process-level key: it belongs in each replica's local file (source: redis), not in the shared table` });
    }
  }
  return problems;
}

/** The listening port's certificates: each file readable, each a PEM of its kind, each key matching its certificate. */
function checkTlsFiles(table: RouteTableConfig, map: SourceMap): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const tls = table.server.tls;
  if (tls !== undefined) {
    try {
      loadContexts(tls);
    } catch (err) {
      const message = (err as Error).message;
      const at = /^server\.tls\.certificates\[(\d+)\]/.exec(message);
      problems.push(map.problem(at ? ['server', 'tls', 'certificates', Number(at[1])] : ['server', 'tls'], message));
    }
  }
  for (const [name, u] of Object.entries(table.upstreams)) {
    if (u.tls === undefined) continue;
    try {
      readUpstreamTls(u.tls, name);
    } catch (err) {
      problems.push(map.problem(['upstreams', name, 'tls'], (err as Error).message));
    }
  }
  return problems;
}
