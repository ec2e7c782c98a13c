import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { LoadedTable } from './config/load';
import type { ConfigProblem } from './config/problem';
import type { RouteConfig } from './config/schema';
import type { LoadRequest, LoadResponse, NextChunk, PeekRequest, PeekResponse, SecretsRequest, SecretsResponse } from './reloadWorker';
import type { SourcePeek } from './config/load';

/** A worker's answer to a load, once any route parts are in (or to a secrets request). */
type FinalResponse = Exclude<LoadResponse, { kind: 'routes' }> | SecretsResponse | PeekResponse;

export type LoadOutcome = { ok: false; problems: ConfigProblem[] } | { ok: true; table: LoadedTable; changes: string[] | undefined };

/** A worker idle this long is stopped: it holds a whole JavaScript heap. */
const IDLE_MS = 5_000;

/**
 * Loads route tables on a worker thread, started when needed and stopped when
 * idle, so a reload never stalls traffic and the gateway's main thread never
 * loads the YAML parser or the schema library. If a worker cannot be started,
 * it loads on the main thread instead.
 */
export class TableLoader {
  private worker: Worker | undefined;
  private idle: NodeJS.Timeout | undefined;
  private nextId = 1;
  /** Loads waiting for an answer, with the worker they were sent to. */
  private readonly pending = new Map<number, { worker: Worker; resolve: (r: FinalResponse | undefined) => void }>();
  /** Routes of large tables received so far, by request id. */
  private readonly parts = new Map<number, RouteConfig[]>();
  private readonly file: string;
  private closed = false;

  constructor(private readonly env: NodeJS.ProcessEnv) {
    // Under ts-jest this file is TypeScript; the compiled worker lives in dist/ (built before the tests).
    this.file = __filename.endsWith('.ts') ? join(__dirname, '..', 'dist', 'src', 'reloadWorker.js') : join(__dirname, 'reloadWorker.js');
  }

  load(path: string, active: LoadedTable | undefined): Promise<LoadOutcome> {
    return this.ask({ kind: 'file', file: path }, active);
  }

  /** `published`: with source: redis, the part of `yaml` published in Redis, checked as a push checks it. */
  text(yaml: string, name: string, active: LoadedTable | undefined, published?: { text: string; where: string }): Promise<LoadOutcome> {
    return this.ask({ kind: 'text', file: name, text: yaml, ...(published === undefined ? {} : { published }) }, active);
  }

  /** Literal secrets of a table's text shown as "***" (the console's editor). */
  async maskSecrets(text: string): Promise<string> {
    const r = await this.secrets({ kind: 'mask', text, file: '' });
    return r.ok ? r.text : text;
  }

  /** An edit's "***" secrets put back from the saved text. */
  restoreSecrets(text: string, original: string, file: string): Promise<{ ok: true; text: string } | { ok: false; problems: ConfigProblem[] }> {
    return this.secrets({ kind: 'restore', text, original, file });
  }

  /** Where the file says its table comes from (`source: redis` and where), read before the table is whole. */
  async peek(file: string): Promise<SourcePeek> {
    const worker = this.start();
    if (worker !== undefined) {
      const id = this.nextId++;
      const response = await new Promise<FinalResponse | undefined>((resolve) => {
        this.pending.set(id, { worker, resolve });
        worker.postMessage({ kind: 'peek', id, file, env: this.env } satisfies PeekRequest);
      });
      if (response !== undefined) return response as PeekResponse;
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { peekSource } = require('./config/load') as typeof import('./config/load');
    return peekSource(file, this.env);
  }

  private async secrets(req: Omit<SecretsRequest, 'id'>): Promise<SecretsResponse> {
    const worker = this.start();
    if (worker !== undefined) {
      const id = this.nextId++;
      const response = await new Promise<FinalResponse | undefined>((resolve) => {
        this.pending.set(id, { worker, resolve });
        worker.postMessage({ ...req, id } satisfies SecretsRequest);
      });
      // The answer to this id is the secrets answer (ids are never reused).
      if (response !== undefined) return response as SecretsResponse;
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { secrets } = require('./reloadWorker') as typeof import('./reloadWorker');
    return secrets({ ...req, id: 0 });
  }

  private start(): Worker | undefined {
    if (this.worker !== undefined || this.closed || !existsSync(this.file)) return this.worker;
    try {
      // A bounded young generation (V8's default grows to 48 MB): this isolate's heap adds to the gateway's memory peak.
      const w = new Worker(this.file, { resourceLimits: { maxYoungGenerationSizeMb: 16 } });
      w.unref();
      w.on('message', (r: LoadResponse) => {
        if ('kind' in r) {
          // Part of a large table: keep it, and ask for the next one on a later turn of the event loop.
          const acc = this.parts.get(r.id);
          if (acc === undefined) this.parts.set(r.id, r.routes);
          else for (const route of r.routes) acc.push(route);
          setImmediate(() => w.postMessage({ kind: 'next', id: r.id } satisfies NextChunk));
          return;
        }
        const parts = this.parts.get(r.id);
        this.parts.delete(r.id);
        let answer: FinalResponse | undefined = r;
        if (r.ok && 'chunked' in r && r.chunked !== undefined) {
          // Every route must have arrived; anything else fails this load (it is then parsed here), never a partial table.
          if (parts === undefined || parts.length !== r.chunked) answer = undefined;
          else r.table.config.routes = parts;
        }
        this.pending.get(r.id)?.resolve(answer);
        this.pending.delete(r.id);
        this.scheduleStop();
      });
      w.on('error', () => this.failAll(w));
      w.on('exit', () => this.failAll(w));
      this.worker = w;
    } catch {
      this.worker = undefined;
    }
    return this.worker;
  }

  private scheduleStop(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = setTimeout(() => {
      if (this.pending.size === 0) this.stopWorker();
    }, IDLE_MS);
    this.idle.unref();
  }

  private async ask(req: Pick<LoadRequest, 'kind' | 'file' | 'text' | 'published'>, active: LoadedTable | undefined): Promise<LoadOutcome> {
    const worker = this.start();
    if (worker !== undefined) {
      const id = this.nextId++;
      const activeRef = active === undefined ? undefined : { version: active.version, source: active.source, text: active.text };
      const response = await new Promise<FinalResponse | undefined>((resolve) => {
        this.pending.set(id, { worker, resolve });
        worker.postMessage({ ...req, id, env: this.env, active: activeRef } satisfies LoadRequest);
      });
      if (response !== undefined) {
        const r = response as Exclude<LoadResponse, { kind: 'routes' }>;
        // Not deep-frozen here: freezing 10,000 routes would cost the event loop what the worker saved.
        return r.ok ? { ok: true, table: r.table, changes: r.changes } : { ok: false, problems: r.problems };
      }
    }
    return this.loadHere(req, active);
  }

  /** No worker (or it died): load on this thread. The loader is required only here. */
  private loadHere(req: Pick<LoadRequest, 'kind' | 'file' | 'text' | 'published'>, active: LoadedTable | undefined): LoadOutcome {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { checkPublishable, loadTableFile, loadTableText } = require('./config/load') as typeof import('./config/load');
    const refused = req.published === undefined ? [] : checkPublishable(req.published.text, req.published.where);
    if (refused.length > 0) return { ok: false, problems: refused };
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { diffTables, summarize } = require('./routing/diff') as typeof import('./routing/diff');
    const result = req.kind === 'file' ? loadTableFile(req.file, this.env) : loadTableText(req.text ?? '', req.file, this.env);
    if (!result.ok) return result;
    return { ok: true, table: result.table, changes: active ? summarize(diffTables(active.config, result.table.config)) : undefined };
  }

  private failAll(w: Worker): void {
    if (this.worker === w) this.worker = undefined;
    // Only the loads sent to this worker: a stopped worker exiting must not fail loads sent to its successor.
    for (const [id, p] of this.pending) {
      if (p.worker !== w) continue;
      this.pending.delete(id);
      this.parts.delete(id);
      p.resolve(undefined);
    }
  }

  private stopWorker(): void {
    const w = this.worker;
    this.worker = undefined;
    if (w) void w.terminate();
  }

  /**
   * Stops the worker now if it has nothing to do (after the first load: the
   * gateway is about to take traffic, and the next reload may be days away).
   */
  release(): void {
    if (this.pending.size > 0) return;
    if (this.idle) clearTimeout(this.idle);
    this.stopWorker();
  }

  close(): void {
    this.closed = true;
    if (this.idle) clearTimeout(this.idle);
    this.stopWorker();
  }
}
