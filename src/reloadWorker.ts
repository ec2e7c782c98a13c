import { parentPort } from 'node:worker_threads';
import { loadTableFile, loadTableText, type LoadedTable } from './config/load';
import type { ConfigProblem } from './config/problem';
import { diffTables, summarize } from './routing/diff';

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
}

export type LoadResponse =
  | { id: number; ok: true; table: LoadedTable; changes: string[] | undefined }
  | { id: number; ok: false; problems: ConfigProblem[] };

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

parentPort?.on('message', (msg: LoadRequest) => {
  const result = msg.kind === 'file' ? loadTableFile(msg.file, msg.env) : loadTableText(msg.text ?? '', msg.file, msg.env);
  if (!result.ok) {
    parentPort!.postMessage({ id: msg.id, ok: false, problems: result.problems } satisfies LoadResponse);
    return;
  }
  const previous = activeTable(msg);
  const changes = previous === undefined ? undefined : summarize(diffTables(previous.config, result.table.config));
  if (msg.kind === 'file') remember(result.table);
  parentPort!.postMessage({ id: msg.id, ok: true, table: result.table, changes } satisfies LoadResponse);
});
