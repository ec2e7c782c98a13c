import { parentPort } from 'node:worker_threads';
import { loadTableFile, loadTableText, type ConfigProblem, type LoadedTable } from './config/load';
import { diffTables, summarize } from './routing/diff';

/**
 * Runs off the event loop: parsing, validating and diffing a large route table
 * takes long enough (about a second for 10,000 routes) to stall traffic if done
 * on the main thread. The main thread only swaps the result in.
 */
export interface LoadRequest {
  id: number;
  kind: 'file' | 'text';
  file: string;
  text?: string;
  env: NodeJS.ProcessEnv;
  /** The version the gateway serves now: the change summary is computed against it when known here. */
  activeVersion: string | undefined;
}

export type LoadResponse =
  | { id: number; ok: true; table: LoadedTable; changes: string[] | undefined }
  | { id: number; ok: false; problems: ConfigProblem[] };

const tables = new Map<string, LoadedTable>();

parentPort?.on('message', (msg: LoadRequest) => {
  const result = msg.kind === 'file' ? loadTableFile(msg.file, msg.env) : loadTableText(msg.text ?? '', msg.file, msg.env);
  if (!result.ok) {
    parentPort!.postMessage({ id: msg.id, ok: false, problems: result.problems } satisfies LoadResponse);
    return;
  }
  const previous = msg.activeVersion === undefined ? undefined : tables.get(msg.activeVersion);
  const changes = previous === undefined ? undefined : summarize(diffTables(previous.config, result.table.config));
  // Keep the last few versions: the one active now is what the next diff is computed against.
  if (msg.kind === 'file') {
    tables.set(result.table.version, result.table);
    if (tables.size > 4) tables.delete(tables.keys().next().value as string);
  }
  parentPort!.postMessage({ id: msg.id, ok: true, table: result.table, changes } satisfies LoadResponse);
});
