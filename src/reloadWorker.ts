import { parentPort } from 'node:worker_threads';
import { checkPublishable, loadTableFile, loadTableText, peekSource, type LoadedTable, type SourcePeek } from './config/load';
import type { ConfigProblem } from './config/problem';
import type { RouteConfig } from './config/schema';
import { diffTables, summarize } from './routing/diff';
import { maskSecrets, restoreSecrets } from './config/secrets';

/**
 * Runs off the event loop: parsing, validating and diffing a large route table
 * takes long enough (about a second for 10,000 routes) to stall traffic if done
 * on the main thread. The main thread only swaps the result in. The parser and
 * the schema library live only here.
 */
export interface LoadRequest {
  id: number;
  kind: 'file' | 'text';
  file: string;
  text?: string;
  env: NodeJS.ProcessEnv;
  /** The table the gateway serves now (version and YAML text): the change summary is computed against it. */
  active: { version: string; source: string; text: string } | undefined;
  /** source: redis: the published part of `text`, checked as a push checks it (no process-level keys, a block mapping). */
  published?: { text: string; where: string };
}

export type LoadResponse =
  | { id: number; ok: true; table: LoadedTable; changes: string[] | undefined; /** Set when the routes came in parts: how many there are. */ chunked?: number }
  | { id: number; ok: false; problems: ConfigProblem[] }
  /** Part of a large table's routes; the main thread asks for the next part when it has taken this one. */
  | { id: number; kind: 'routes'; routes: RouteConfig[] };

/** The console's editor: literal secrets masked for showing, or put back from the saved text into an edit. */
export interface SecretsRequest {
  id: number;
  kind: 'mask' | 'restore';
  text: string;
  /** restore: the saved text the masked values come from. */
  original?: string;
  file: string;
}

export type SecretsResponse = { id: number; ok: true; text: string } | { id: number; ok: false; problems: ConfigProblem[] };

/** Where a table file says its table comes from (`source`, and `state.redis` when it is Redis). */
export interface PeekRequest {
  id: number;
  kind: 'peek';
  file: string;
  env: NodeJS.ProcessEnv;
}

export type PeekResponse = { id: number } & SourcePeek;

/** Main thread -> worker: send the next part of table `id`. */
export interface NextChunk {
  kind: 'next';
  id: number;
}

/**
 * Routes per message for a large table. The main thread receives each part in
 * its own event-loop turn, so receiving 10,000 routes is ten short pauses for
 * traffic instead of one long one (and the young generation takes them a part at a time).
 */
export const ROUTES_PER_CHUNK = 1000;

/** Parsed tables by version, so the active one is not parsed again for every diff. */
const tables = new Map<string, LoadedTable>();

function remember(t: LoadedTable): void {
  tables.set(t.version, t);
  if (tables.size > 4) tables.delete(tables.keys().next().value as string);
}

function activeTable(msg: LoadRequest): LoadedTable | undefined {
  if (msg.active === undefined) return undefined;
  const known = tables.get(msg.active.version);
  if (known) return known;
  const parsed = loadTableText(msg.active.text, msg.active.source, msg.env);
  if (!parsed.ok) return undefined;
  remember(parsed.table);
  return parsed.table;
}

/** Parts of large tables not yet handed over, by request id. */
const outgoing = new Map<number, { parts: RouteConfig[][]; last: LoadResponse }>();

function sendNext(id: number): void {
  const o = outgoing.get(id);
  if (o === undefined) return;
  const part = o.parts.shift();
  if (part !== undefined) parentPort!.postMessage({ id, kind: 'routes', routes: part } satisfies LoadResponse);
  else {
    outgoing.delete(id);
    parentPort!.postMessage(o.last);
  }
}

parentPort?.on('message', (msg: LoadRequest | NextChunk | SecretsRequest | PeekRequest) => {
  if (msg.kind === 'next') return sendNext(msg.id);
  if (msg.kind === 'peek') return parentPort!.postMessage({ id: msg.id, ...peekSource(msg.file, msg.env) } satisfies PeekResponse);
  if (msg.kind === 'mask' || msg.kind === 'restore') return parentPort!.postMessage(secrets(msg) satisfies SecretsResponse);
  load(msg as LoadRequest);
});

export function secrets(msg: SecretsRequest): SecretsResponse {
  if (msg.kind === 'mask') return { id: msg.id, ok: true, text: maskSecrets(msg.text) };
  return { id: msg.id, ...restoreSecrets(msg.text, msg.original ?? '', msg.file) };
}

function load(msg: LoadRequest): void {
  const refused = msg.published === undefined ? [] : checkPublishable(msg.published.text, msg.published.where);
  if (refused.length > 0) {
    parentPort!.postMessage({ id: msg.id, ok: false, problems: refused } satisfies LoadResponse);
    return;
  }
  const result = msg.kind === 'file' ? loadTableFile(msg.file, msg.env) : loadTableText(msg.text ?? '', msg.file, msg.env);
  if (!result.ok) {
    parentPort!.postMessage({ id: msg.id, ok: false, problems: result.problems } satisfies LoadResponse);
    return;
  }
  const previous = activeTable(msg);
  const changes = previous === undefined ? undefined : summarize(diffTables(previous.config, result.table.config));
  if (msg.kind === 'file') remember(result.table);
  const routes = result.table.config.routes;
  if (routes.length <= ROUTES_PER_CHUNK) {
    parentPort!.postMessage({ id: msg.id, ok: true, table: result.table, changes } satisfies LoadResponse);
    return;
  }
  const parts: RouteConfig[][] = [];
  for (let i = 0; i < routes.length; i += ROUTES_PER_CHUNK) parts.push(routes.slice(i, i + ROUTES_PER_CHUNK));
  const table: LoadedTable = { ...result.table, config: { ...result.table.config, routes: [] } };
  outgoing.set(msg.id, { parts, last: { id: msg.id, ok: true, table, changes, chunked: routes.length } });
  sendNext(msg.id);
}
