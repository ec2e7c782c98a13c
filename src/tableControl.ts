import { readFile } from 'node:fs/promises';
import type { CandidateCheck, EditOutcome, ReloadError, ReloadOutcome } from './admin/app';
import type { LoadedTable } from './config/load';
import { formatProblem } from './config/problem';
import { saveTableFile } from './config/save';
import { versionOf } from './config/version';
import { TableWatcher } from './config/watch';
import type { Logger } from './observability/logger';
import type { LoadOutcome, TableLoader } from './tableLoader';
import type { RedisTableStore } from './state/tableStore';
import type { ConfigProblem } from './config/problem';

export type ReloadTrigger = 'watch' | 'SIGHUP' | 'api' | 'console' | 'redis' | 'tls';

export interface ReloadRecord {
  at: string;
  trigger: ReloadTrigger;
  /** Who asked (console edits): the admin token's name. */
  by?: string;
  outcome: ReloadOutcome['outcome'];
  version: string;
  previousVersion?: string;
  changes?: string[];
  durationMs?: number;
  problems?: string[];
}

/** What a new table version is handed to: the gateway itself, or (with server.workers) every worker. */
export interface TableTarget {
  /** Swaps the table in. `false` when it was not (shutting down); a string says why it failed. */
  apply(table: LoadedTable, changes: string[]): Promise<true | false | string>;
  readonly draining: boolean;
}

export interface ReloadCounter {
  reload(outcome: 'applied' | 'unchanged' | 'failed'): void;
  activeVersion(version: string): void;
}

/** Where route tables come from: the file, or (source: redis) the file's process-level keys and the rest from Redis. */
export interface TableSource {
  read(current: LoadedTable | undefined): Promise<LoadOutcome>;
  /** Calls `changed` when a new version may be there. */
  watch(config: LoadedTable['config']['reload'], changed: (trigger: ReloadTrigger) => void): void;
  stop(): void;
  /** false: the table is not edited here (source: redis is edited with `strangler push`). */
  readonly editable: boolean;
}

export class FileSource implements TableSource {
  readonly editable = true;
  private watcher: TableWatcher | undefined;

  constructor(
    private readonly loader: TableLoader,
    private readonly file: string,
  ) {}

  read(current: LoadedTable | undefined): Promise<LoadOutcome> {
    return this.loader.load(this.file, current);
  }

  watch(r: LoadedTable['config']['reload'], changed: (trigger: ReloadTrigger) => void): void {
    if (!r.watch) return;
    this.watcher = new TableWatcher(this.file, () => changed('watch'), r.debounceMs, r.pollIntervalMs);
    this.watcher.start();
  }

  stop(): void {
    this.watcher?.stop();
  }
}

/** Redis is asked for the version this often besides pub/sub: a missed announcement is caught within a second. */
const VERSION_CHECK_MS = 1_000;

/**
 * source: redis. The local file holds the process-level keys; the rest of the
 * table is the text published in Redis (`strangler push`). The two are read
 * as one table, checked with every rule of a file (problems in the published
 * part are reported at its own lines, as `redis:<key>@<version>:LINE:COL`).
 */
export class RedisSource implements TableSource {
  readonly editable = false;
  private watcher: TableWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The published version last read. */
  remoteVersion: string | undefined;
  /** The version a reload was last asked for (asked again only if reading it failed for want of Redis). */
  private asked: string | undefined;

  constructor(
    private readonly loader: TableLoader,
    private readonly file: string,
    readonly store: RedisTableStore,
  ) {}

  async read(current: LoadedTable | undefined): Promise<LoadOutcome> {
    const fail = (message: string, file = this.store.where): LoadOutcome => ({ ok: false, problems: [{ file, line: 1, col: 1, message }] });
    let local: string;
    try {
      local = await readFile(this.file, 'utf8');
    } catch (err) {
      return fail(`cannot read the route table: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message}`, this.file);
    }
    let remote: { version: string; text: string } | undefined;
    try {
      remote = await this.store.get();
    } catch (err) {
      this.asked = undefined;
      return fail(`cannot read the published route table from Redis: ${(err as Error).message}`);
    }
    if (remote === undefined) return fail('no route table is published in Redis yet: publish one with `strangler push FILE`');
    const head = `${local.endsWith('\n') || local === '' ? local : `${local}\n`}# ---- published in ${this.store.where}, version ${remote.version} ----\n`;
    const offset = head.split('\n').length - 1;
    const where = `${this.store.where}@${remote.version}`;
    // Checked as a push checks it: written to Redis some other way, it must still hold no process-level key (an admin port, a Redis).
    const result = await this.loader.text(head + remote.text, this.file, current, { text: remote.text, where });
    if (result.ok) {
      this.remoteVersion = remote.version;
      return result;
    }
    return { ok: false, problems: result.problems.map((p): ConfigProblem => (p.file === where || p.line <= offset ? p : { ...p, file: where, line: p.line - offset })) };
  }

  watch(r: LoadedTable['config']['reload'], changed: (trigger: ReloadTrigger) => void): void {
    if (r.watch) {
      this.watcher = new TableWatcher(this.file, () => changed('watch'), r.debounceMs, r.pollIntervalMs);
      this.watcher.start();
    }
    // One reload per new version, whichever hears of it first (the announcement or the check).
    const seen = (version: string | undefined): void => {
      if (version === undefined || version === this.remoteVersion || version === this.asked) return;
      this.asked = version;
      changed('redis');
    };
    this.store.subscribe(seen);
    this.timer = setInterval(() => {
      this.store.version().then(seen, () => undefined);
    }, VERSION_CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    this.watcher?.stop();
    if (this.timer) clearInterval(this.timer);
    this.store.close();
  }
}

/** The source a table file names: itself, or Redis (source: redis). Throws the file's problems if it cannot say. */
export async function openSource(loader: TableLoader, file: string): Promise<TableSource | ConfigProblem[]> {
  const peek = await loader.peek(file);
  if (!peek.ok) return peek.problems;
  if (peek.source === 'file') return new FileSource(loader, file);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { RedisTableStore } = require('./state/tableStore') as typeof import('./state/tableStore');
  return new RedisSource(loader, file, new RedisTableStore(peek.redis));
}

/** Reload attempts kept for GET /reloads. */
const RELOADS_KEPT = 50;
/** Served versions whose text is kept, to tell a console edit based on one of them what changed since. */
const TEXTS_KEPT = 20;

/**
 * The route table's owner: reads the file (on a worker thread), watches it,
 * reloads one at a time, saves console edits, keeps the reload history. It
 * hands each valid new version to its target: the one gateway, or the
 * primary's workers (server.workers), so the file is read and checked once.
 */
export class TableControl {
  /** The last failed table reload and the last failed TLS files reload, each cleared only by its own kind's success. */
  private tableError: ReloadError | undefined;
  private tlsError: ReloadError | undefined;

  get lastReloadError(): ReloadError | undefined {
    return this.tableError ?? this.tlsError;
  }

  private readonly history: ReloadRecord[] = [];
  /** YAML texts of recently served versions: what a console edit was based on, to show what changed since. */
  private readonly recentTexts = new Map<string, string>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly configPath: string,
    private readonly loader: TableLoader,
    private readonly source: TableSource,
    /** The version served now. */
    public loaded: LoadedTable,
    private readonly target: TableTarget,
    private readonly log: Logger,
    private readonly counter: ReloadCounter | undefined,
  ) {
    this.served(loaded);
    counter?.activeVersion(loaded.version);
  }

  watch(): void {
    this.source.watch(this.loaded.config.reload, (trigger) => void this.reload(trigger));
  }

  stop(): void {
    this.source.stop();
  }

  /**
   * Re-reads the route table file. A valid new version is handed to the
   * target; an invalid one changes nothing but the reported error. Never throws.
   */
  reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    return this.serially(async () => this.remember(trigger, await this.reloadNow(trigger)));
  }

  /** One reload or console edit at a time, in the order they were asked for. */
  private serially<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Keeps a reload attempt in the history (GET /reloads). */
  private remember(trigger: ReloadTrigger, outcome: ReloadOutcome, by?: string): ReloadOutcome {
    this.history.push({
      at: new Date().toISOString(),
      trigger,
      ...(by === undefined ? {} : { by }),
      outcome: outcome.outcome,
      version: outcome.version,
      ...(outcome.outcome === 'applied' ? { previousVersion: outcome.previousVersion, changes: outcome.changes, durationMs: outcome.durationMs } : {}),
      ...(outcome.outcome === 'failed' ? { problems: outcome.problems.map(formatProblem) } : {}),
    });
    if (this.history.length > RELOADS_KEPT) this.history.shift();
    return outcome;
  }

  /**
   * A reload of something the table names but does not hold (the TLS
   * certificates' files): kept in the history and reported like a table reload.
   */
  external(trigger: ReloadTrigger, result: { ok: true; changes: string[] } | { ok: false; file: string; message: string }): ReloadOutcome {
    const version = this.loaded.version;
    if (!result.ok) return this.remember(trigger, this.failed(trigger, version, [{ file: result.file, line: 0, col: 0, message: result.message }]));
    this.tlsError = undefined;
    this.counter?.reload('applied');
    this.log.info({ trigger, version, changes: result.changes }, result.changes.join('; '));
    return this.remember(trigger, { outcome: 'applied', version, previousVersion: version, changes: result.changes, durationMs: 0 });
  }

  reloads(): ReloadRecord[] {
    return [...this.history].reverse();
  }

  private served(loaded: LoadedTable): void {
    this.loaded = loaded;
    this.recentTexts.set(loaded.version, loaded.text);
    if (this.recentTexts.size > TEXTS_KEPT) this.recentTexts.delete(this.recentTexts.keys().next().value as string);
  }

  private async reloadNow(trigger: string): Promise<ReloadOutcome> {
    const started = performance.now();
    const current = this.loaded;
    // Parsing, validation and the change summary run on a worker thread: traffic keeps flowing meanwhile.
    const result = await this.source.read(current);
    // Shutting down: a late reload must not build pools and breakers that nobody will close.
    if (this.target.draining) return { outcome: 'unchanged', version: current.version };
    if (!result.ok) return this.failed(trigger, current.version, result.problems);
    this.tableError = undefined;
    if (result.table.version === current.version) {
      this.counter?.reload('unchanged');
      this.log.debug({ trigger, version: current.version }, 'route table unchanged');
      return { outcome: 'unchanged', version: current.version };
    }
    const changes = result.changes ?? [];
    const applied = await this.target.apply(result.table, changes);
    if (applied === false) return { outcome: 'unchanged', version: current.version };
    if (applied !== true) return this.failed(trigger, current.version, [{ file: this.configPath, line: 0, col: 0, message: applied }]);
    this.served(result.table);
    this.counter?.activeVersion(result.table.version);
    this.counter?.reload('applied');
    const durationMs = Math.round((performance.now() - started) * 10) / 10;
    this.log.info({ trigger, version: result.table.version, previousVersion: current.version, changes, durationMs }, `route table applied: ${changes.length ? changes.join('; ') : 'no routing change'}`);
    return { outcome: 'applied', version: result.table.version, previousVersion: current.version, changes, durationMs };
  }

  private failed(trigger: string, version: string, problems: ReloadError['problems']): ReloadOutcome {
    const error = { at: new Date().toISOString(), trigger, problems };
    if (trigger === 'tls') this.tlsError = error;
    else this.tableError = error;
    this.counter?.reload('failed');
    this.log.error({ trigger, version, problems: problems.map(formatProblem) }, `route table rejected, still serving version ${version}`);
    return { outcome: 'failed', version, problems };
  }

  async checkCandidate(yaml: string): Promise<CandidateCheck> {
    const result = await this.loader.text(yaml, '<candidate>', this.loaded);
    if (!result.ok) return { valid: false, problems: result.problems };
    return { valid: true, version: result.table.version, changes: result.changes ?? [] };
  }

  /** The route table as the console shows it: the served text with literal secrets masked. */
  async tableText(): Promise<{ version: string; file: string; allowEdit: boolean; text: string }> {
    const loaded = this.loaded;
    return { version: loaded.version, file: this.configPath, allowEdit: loaded.config.admin?.allowEdit === true && this.source.editable, text: await this.loader.maskSecrets(loaded.text) };
  }

  /** Validates an edit (its masked secrets put back from the served text) and summarises its changes. */
  async checkEdit(text: string): Promise<CandidateCheck> {
    const restored = await this.loader.restoreSecrets(text, this.loaded.text, '<edit>');
    if (!restored.ok) return { valid: false, problems: restored.problems };
    return this.checkCandidate(restored.text);
  }

  /**
   * Saves a console edit to the route table file and reloads it. Refused when
   * the edit is based on another version than the one served, or the file
   * changed on disk since it was loaded (the answer says what changed).
   */
  applyEdit(text: string, baseVersion: string, by: string): Promise<EditOutcome> {
    return this.serially(() => this.applyEditNow(text, baseVersion, by));
  }

  private async applyEditNow(text: string, baseVersion: string, by: string): Promise<EditOutcome> {
    const admin = this.loaded.config.admin;
    if (admin?.allowEdit !== true || !this.source.editable) return { outcome: 'read-only' };
    const file = this.configPath;
    const current = this.loaded;
    const onDisk = await readFile(file, 'utf8').catch(() => undefined);
    if (baseVersion !== current.version || (onDisk !== undefined && onDisk !== current.text)) {
      const theirs = onDisk ?? current.text;
      const baseText = this.recentTexts.get(baseVersion);
      let changes: string[] = [];
      if (baseText !== undefined) {
        const diff = await this.loader.text(theirs, file, { version: baseVersion, source: file, text: baseText, config: current.config });
        changes = diff.ok ? (diff.changes ?? []) : ['the file on disk is not a valid route table now'];
      }
      return { outcome: 'conflict', version: onDisk !== undefined && onDisk !== current.text ? versionOf(onDisk) : current.version, changes, knownBase: baseText !== undefined };
    }
    const restored = await this.loader.restoreSecrets(text, current.text, file);
    if (!restored.ok) return { outcome: 'invalid', problems: restored.problems };
    const candidate = await this.loader.text(restored.text, file, current);
    if (!candidate.ok) return { outcome: 'invalid', problems: candidate.problems };
    const { historyFile } = await saveTableFile(file, restored.text, admin.historySize);
    const result = this.remember('console', await this.reloadNow('console'), by);
    if (result.outcome === 'applied') this.log.info({ by, version: result.version, previousVersion: result.previousVersion, changes: result.changes, history: historyFile }, `route table edited in the console by ${by}`);
    return { outcome: 'saved', reload: result };
  }
}
