import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { loadTableFile, loadTableText, type LoadedTable, type LoadResult } from './config/load';
import { diffTables, summarize } from './routing/diff';
import type { LoadRequest, LoadResponse } from './reloadWorker';

export type LoadOutcome = (LoadResult & { ok: false }) | { ok: true; table: LoadedTable; changes: string[] | undefined };

/**
 * Loads route tables on a worker thread so a reload never stalls traffic; if a
 * worker cannot be started it loads on the main thread instead.
 */
export class TableLoader {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, (r: LoadResponse) => void>();

  constructor(private readonly env: NodeJS.ProcessEnv) {
    // Under ts-jest this file is TypeScript; the compiled worker lives in dist/ (built before the tests).
    const file = __filename.endsWith('.ts') ? join(__dirname, '..', 'dist', 'src', 'reloadWorker.js') : join(__dirname, 'reloadWorker.js');
    if (!existsSync(file)) return;
    try {
      this.worker = new Worker(file);
      this.worker.unref();
      this.worker.on('message', (r: LoadResponse) => {
        this.pending.get(r.id)?.(r);
        this.pending.delete(r.id);
      });
      this.worker.on('error', () => this.failAll());
      this.worker.on('exit', () => this.failAll());
    } catch {
      this.worker = undefined;
    }
  }

  file(path: string, active: LoadedTable | undefined): Promise<LoadOutcome> {
    return this.ask({ kind: 'file', file: path }, active);
  }

  text(yaml: string, name: string, active: LoadedTable | undefined): Promise<LoadOutcome> {
    return this.ask({ kind: 'text', file: name, text: yaml }, active);
  }

  private async ask(req: Pick<LoadRequest, 'kind' | 'file' | 'text'>, active: LoadedTable | undefined): Promise<LoadOutcome> {
    const worker = this.worker;
    if (worker !== undefined) {
      const id = this.nextId++;
      const response = await new Promise<LoadResponse | undefined>((resolve) => {
        this.pending.set(id, resolve);
        worker.postMessage({ ...req, id, env: this.env, activeVersion: active?.version } satisfies LoadRequest);
      });
      if (response !== undefined) {
        if (!response.ok) return { ok: false, problems: response.problems };
        const changes = response.changes ?? (active ? summarize(diffTables(active.config, response.table.config)) : undefined);
        return { ok: true, table: { ...response.table, config: deepFreeze(response.table.config) }, changes };
      }
    }
    // No worker (or it died): load here.
    const result = req.kind === 'file' ? loadTableFile(req.file, this.env) : loadTableText(req.text ?? '', req.file, this.env);
    if (!result.ok) return result;
    return { ok: true, table: result.table, changes: active ? summarize(diffTables(active.config, result.table.config)) : undefined };
  }

  private failAll(): void {
    this.worker = undefined;
    for (const resolve of this.pending.values()) resolve(undefined as unknown as LoadResponse);
    this.pending.clear();
  }

  close(): void {
    void this.worker?.terminate();
    this.worker = undefined;
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
