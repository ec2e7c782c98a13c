import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Server } from 'node:http';
import type { AdminControl, CandidateCheck, EditOutcome, ReloadOutcome } from '../admin/app';
import type { LoadedTable } from '../config/load';
import type { RouteTableConfig } from '../config/schema';
import type { InventoryReport } from '../migration/insight';
import { createLoggers, type LogOutputs, type Logger, type Loggers } from '../observability/logger';
import type { GatewayMetrics } from '../observability/metrics';
import { LeaseBank } from '../ratelimit/gcra';
import { NewestEvents, slot as eventSlot, sumFresh, type CanaryEvent, type Counts } from '../state/peers';
import { TableControl, type ReloadRecord, type ReloadTrigger, type TableTarget } from '../tableControl';
import type { Loaded } from '../server';
import { mergeStates } from './merge';
import { Replies } from './replies';
import { WORKER_ENV, type FromWorker, type Question, type ToWorker } from './protocol';

/** How many workers `server.workers` asks for. */
export function workerCount(setting: RouteTableConfig['server']['workers']): number {
  return setting === 'auto' ? availableParallelism() : setting;
}

/** A worker that has not started, or not applied a table, in this time is restarted. */
const APPLY_TIMEOUT_MS = 10_000;
const START_TIMEOUT_MS = 30_000;
/** Admin questions wait this long for the workers' answers; a worker that has not answered is left out. */
const ASK_TIMEOUT_MS = 2_000;
/** Restart backoff: doubling from the first to the last; a worker that lived this long starts the count again. */
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 30_000;
const HEALTHY_AFTER_MS = 30_000;

interface Slot {
  index: number;
  worker: Worker | undefined;
  /** The version it serves (undefined until ready). */
  version: string | undefined;
  startedAt: number;
  /** Restarts in a row (each after a short life). */
  failures: number;
  restart: NodeJS.Timeout | undefined;
  /** Its latest shared counts per key. */
  counts: Map<string, { counts: Counts; at: number }>;
}

export interface PrimaryOptions {
  configPath: string;
  port?: number;
  adminPort?: number;
  host?: string;
  logFormat?: 'json' | 'pretty';
  logOutputs?: LogOutputs;
}

/**
 * The primary of server.workers: it serves no traffic. It owns the route
 * table (reads, watches and checks it once, then hands the same version to
 * every worker and reports a reload done only when all have it), the admin
 * API (answers summed over the workers), and what the workers share without
 * Redis: canary decisions and counts, rate-limit allowance. A worker that
 * dies is restarted with backoff.
 */
export class Primary implements AdminControl, TableTarget {
  draining = false;
  table: { version: string; config: RouteTableConfig; loadedAt: Date; source: string };
  readonly log: Logger;
  private readonly loggers: Loggers;
  readonly metrics: GatewayMetrics | undefined;
  private readonly control: TableControl;
  private readonly slots: Slot[] = [];
  /** The table workers start with and are moved to. */
  private current: LoadedTable;
  /** Workers' answers awaited (table applies, admin questions), by the worker asked. */
  private readonly replies = new Replies<{ value?: unknown; error?: string }, Slot>();
  /** The newest canary decision per route (and ramp), for workers started later. */
  private readonly events = new Map<string, CanaryEvent>();
  private readonly newest = new NewestEvents();
  private readonly bank = new LeaseBank();
  /** The last TLS reload reported by a worker (the others report the same one). */
  private lastTls: { key: string; at: number } | undefined;
  private admin: Server | undefined;
  port: number | undefined;
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly options: PrimaryOptions,
    owner: Loaded,
    private readonly count: number,
  ) {
    const loaded = owner.table;
    this.current = loaded;
    this.table = { version: loaded.version, config: loaded.config, loadedAt: new Date(), source: loaded.source };
    const logConfig = options.logFormat ? { ...loaded.config.log, format: options.logFormat } : loaded.config.log;
    this.loggers = createLoggers(logConfig, options.logOutputs);
    this.log = this.loggers.root.child({ role: 'primary' });
    if (loaded.config.admin !== undefined) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { GatewayMetrics } = require('../observability/metrics') as typeof import('../observability/metrics');
      // The primary's own series (reloads, the version, restarts, its process) are summed with the workers'.
      this.metrics = new GatewayMetrics(
        () => [],
        () => 0,
        () => [],
      );
    }
    this.control = new TableControl(options.configPath, owner.loader, owner.source, loaded, this, this.log, this.metrics);
    // Workers accept connections themselves from the shared socket (the kernel hands each to one of them).
    // Node's round-robin mode accepts in the primary and passes each connection over IPC: a connection
    // passed to a worker that dies before taking it is lost, its client left hanging.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ serialization: 'advanced' });
    cluster.on('message', (worker, m: FromWorker) => this.received(worker, m));
    cluster.on('exit', (worker, code, signal) => this.exited(worker, code, signal));
  }

  static async start(options: PrimaryOptions, owner: Loaded, count: number): Promise<Primary> {
    const loaded = owner.table;
    const p = new Primary(options, owner, count);
    for (let i = 1; i <= count; i++) {
      const slot: Slot = { index: i, worker: undefined, version: undefined, startedAt: 0, failures: 0, restart: undefined, counts: new Map() };
      p.slots.push(slot);
      p.fork(slot);
    }
    await p.allReady();
    p.log.info({ port: p.port, workers: count, version: loaded.version, routes: loaded.config.routes.length }, `gateway listening with ${count} workers`);
    await p.listenAdmin();
    p.control.watch();
    return p;
  }

  private allReady(): Promise<void> {
    return new Promise((resolve, reject) => {
      const started = Date.now();
      const check = setInterval(() => {
        if (this.slots.every((s) => s.version !== undefined)) {
          clearInterval(check);
          resolve();
        } else if (this.slots.some((s) => s.failures > 0) || Date.now() - started > START_TIMEOUT_MS) {
          clearInterval(check);
          this.draining = true;
          for (const s of this.slots) s.worker?.kill('SIGKILL');
          reject(new Error('workers could not start: see their output above'));
        }
      }, 20);
    });
  }

  private async listenAdmin(): Promise<void> {
    if (!this.table.config.admin) return;
    const { listenAdmin } = await import('../admin/app');
    this.admin = await listenAdmin(this, this.log, this.options.adminPort);
  }

  get adminPort(): number | undefined {
    const a = this.admin?.address();
    return typeof a === 'object' && a !== null ? a.port : undefined;
  }

  private fork(slot: Slot): void {
    slot.restart = undefined;
    slot.version = undefined;
    slot.startedAt = Date.now();
    slot.counts.clear();
    slot.worker = cluster.fork({ [WORKER_ENV]: String(slot.index) });
  }

  private send(slot: Slot, m: ToWorker): void {
    const w = slot.worker;
    if (w === undefined || !w.isConnected()) return;
    try {
      w.send(m);
    } catch {
      // It is exiting: its exit handler restarts it.
    }
  }

  private slotOf(worker: Worker): Slot | undefined {
    return this.slots.find((s) => s.worker === worker);
  }

  private received(worker: Worker, m: FromWorker): void {
    const slot = this.slotOf(worker);
    if (slot === undefined) return;
    switch (m.t) {
      case 'hello': {
        const { port, host } = this.options;
        this.send(slot, { t: 'table', id: 0, table: this.current, ...(port === undefined ? {} : { port }), ...(host === undefined ? {} : { host }) });
        return;
      }
      case 'ready':
        slot.version = m.version;
        this.port ??= m.port;
        this.log.info({ worker: slot.index, workerPid: worker.process.pid, version: m.version }, `worker ${slot.index} serving`);
        // A reload happened while it started: it gets the new version now. Canary decisions made before it are its too.
        if (m.version !== this.current.version) this.send(slot, { t: 'table', id: 0, table: this.current });
        for (const e of this.events.values()) this.send(slot, { t: 'canary', e });
        return;
      case 'applied':
      case 'answer': {
        if (m.t === 'applied') slot.version = m.error === undefined ? m.version : slot.version;
        this.replies.answer(m.id, m.t === 'applied' ? (m.error === undefined ? {} : { error: m.error }) : { value: m.value, error: m.error });
        return;
      }
      case 'canary':
        // One decision, made on the summed counts by the worker that saw it first, honoured by all.
        if (!this.newest.take(m.e)) return;
        this.events.set(eventSlot(m.e), m.e);
        for (const s of this.slots) if (s !== slot) this.send(s, { t: 'canary', e: m.e });
        return;
      case 'counts': {
        const now = Date.now();
        for (const c of m.counts) slot.counts.set(c.key, { counts: c.counts, at: now });
        const others: Record<string, Counts> = {};
        for (const c of m.counts) {
          const sum = sumFresh(this.slots.filter((s) => s !== slot).flatMap((s) => s.counts.get(c.key) ?? []), now);
          if (sum !== undefined) others[c.key] = sum;
        }
        this.send(slot, { t: 'counts', others });
        return;
      }
      case 'lease':
        this.send(slot, { t: 'lease', id: m.id, r: this.bank.lease(m.key, m.p, m.want) });
        return;
      case 'tls': {
        // Every worker watches the same files and reports the same outcome: reported once.
        const key = JSON.stringify(m.result);
        const now = Date.now();
        if (key === this.lastTls?.key && now - this.lastTls.at < 10_000) return;
        this.lastTls = { key, at: now };
        this.control.external('tls', m.result);
        return;
      }
    }
  }

  private exited(worker: Worker, code: number | null, signal: string | null): void {
    const slot = this.slotOf(worker);
    if (slot === undefined) return;
    slot.worker = undefined;
    slot.version = undefined;
    this.replies.drop((asked) => asked === slot);
    if (this.draining) return;
    slot.failures = Date.now() - slot.startedAt > HEALTHY_AFTER_MS ? 0 : slot.failures + 1;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.max(0, slot.failures - 1));
    this.metrics?.workerRestarted();
    this.log.error({ worker: slot.index, workerPid: worker.process.pid, code, signal, restartInMs: delay }, `worker ${slot.index} exited (${signal ?? `code ${code}`}); restarting it in ${delay} ms`);
    slot.restart = setTimeout(() => this.fork(slot), delay);
  }

  /** Sends to one worker and waits for its answer (undefined: it did not answer in time, or exited). */
  private request(slot: Slot, make: (id: number) => ToWorker, timeoutMs: number): Promise<{ value?: unknown; error?: string } | undefined> {
    return this.replies.ask((id) => this.send(slot, make(id)), timeoutMs, slot);
  }

  private serving(): Slot[] {
    return this.slots.filter((s) => s.worker !== undefined && s.version !== undefined);
  }

  /** Asks every serving worker; the answers of those that answered in time. */
  private async askAll<T>(q: Question): Promise<T[]> {
    const answers = await Promise.all(this.serving().map((s) => this.request(s, (id) => ({ t: 'ask', id, q }), ASK_TIMEOUT_MS)));
    return answers.filter((a): a is { value?: unknown } => a !== undefined && a.error === undefined).map((a) => a.value as T);
  }

  private async askOne<T>(q: Question): Promise<T | undefined> {
    for (const s of this.serving()) {
      const a = await this.request(s, (id) => ({ t: 'ask', id, q }), ASK_TIMEOUT_MS);
      if (a !== undefined && a.error === undefined) return a.value as T;
    }
    return undefined;
  }

  /**
   * TableTarget: every worker gets the new version; done when all have it. A
   * worker that fails to apply it, or does not answer in time, is restarted
   * (and starts with the new version).
   */
  async apply(table: LoadedTable): Promise<true | false> {
    if (this.draining) return false;
    // A canary edited (or removed) starts afresh in every worker: its old decisions are not replayed to workers started later.
    const before = new Map(this.current.config.routes.map((r) => [r.name, JSON.stringify([r.upstream, r.canary])]));
    for (const r of table.config.routes) {
      if (before.get(r.name) === JSON.stringify([r.upstream, r.canary])) continue;
      this.events.delete(r.name);
      this.events.delete(`${r.name}:ramp`);
    }
    for (const name of before.keys()) {
      if (table.config.routes.some((r) => r.name === name)) continue;
      this.events.delete(name);
      this.events.delete(`${name}:ramp`);
    }
    this.current = table;
    const results = await Promise.all(
      this.slots.map(async (slot) => {
        if (slot.worker === undefined || slot.version === undefined) return; // (re)starting: it is given the new version when ready
        const r = await this.request(slot, (id) => ({ t: 'table', id, table }), APPLY_TIMEOUT_MS);
        if (r !== undefined && r.error === undefined) return;
        this.log.error({ worker: slot.index, version: table.version, error: r?.error ?? 'no answer' }, `worker ${slot.index} did not apply version ${table.version}; restarting it`);
        slot.worker?.kill('SIGKILL');
      }),
    );
    void results;
    this.table = { version: table.version, config: table.config, loadedAt: new Date(), source: table.source };
    return true;
  }

  // --- AdminControl: the table is the primary's; the rest is asked of the workers and summed.

  get lastReloadError(): AdminControl['lastReloadError'] {
    return this.control.lastReloadError;
  }

  reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    return this.control.reload(trigger);
  }

  reloads(): ReloadRecord[] {
    return this.control.reloads();
  }

  checkCandidate(yaml: string): Promise<CandidateCheck> {
    return this.control.checkCandidate(yaml);
  }

  tableText(): Promise<{ version: string; file: string; allowEdit: boolean; text: string }> {
    return this.control.tableText();
  }

  checkEdit(yaml: string): Promise<CandidateCheck> {
    return this.control.checkEdit(yaml);
  }

  applyEdit(yaml: string, baseVersion: string, by: string): Promise<EditOutcome> {
    return this.control.applyEdit(yaml, baseVersion, by);
  }

  workerStatus(): { serving: number; workers: number } {
    return { serving: this.serving().length, workers: this.count };
  }

  async upstreamStates(): Promise<Array<Record<string, unknown>>> {
    return mergeStates(await this.askAll('upstreams'));
  }

  async breakerHistory(): Promise<Array<{ at: string; upstream: string; from: string; to: string }>> {
    const all = (await this.askAll<Array<{ at: string; upstream: string; from: string; to: string }>>('breakerHistory')).flat();
    return all.sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0)).slice(0, 100);
  }

  async canaryStates(): Promise<Array<Record<string, unknown>>> {
    return mergeStates(await this.askAll('canaries'));
  }

  async resetCanary(route: string): Promise<boolean> {
    // One worker resets it and announces the reset; the others take it from there.
    return (await this.askOne<boolean>({ kind: 'resetCanary', route })) === true;
  }

  async shadowStates(): Promise<Array<Record<string, unknown>>> {
    return mergeStates(await this.askAll('shadows'));
  }

  async shadowSamples(route: string): Promise<unknown[] | undefined> {
    const all = (await this.askAll<unknown[] | undefined>({ kind: 'shadowSamples', route })).filter((s): s is unknown[] => s !== undefined);
    if (all.length === 0) return undefined;
    const at = (s: unknown): string => String((s as { at?: unknown }).at ?? '');
    return all.flat().sort((a, b) => (at(a) < at(b) ? 1 : at(a) > at(b) ? -1 : 0));
  }

  async resetShadow(route: string): Promise<boolean> {
    return (await this.askAll<boolean>({ kind: 'resetShadow', route })).some((r) => r);
  }

  /** The first serving worker sums the others' counts with its own: the report is made where the table's details are. */
  async migrationReport(): Promise<Record<string, unknown> | undefined> {
    const [first, ...rest] = this.serving();
    if (first === undefined) return undefined;
    const others = await this.snapshots(rest);
    const r = await this.request(first, (id) => ({ t: 'ask', id, q: { kind: 'migrationReport', others } }), ASK_TIMEOUT_MS);
    return r?.value === undefined ? undefined : { ...(r.value as Record<string, unknown>), workers: 1 + others.length };
  }

  async inventory(): Promise<InventoryReport | undefined> {
    const [first, ...rest] = this.serving();
    if (first === undefined) return undefined;
    const others = await this.snapshots(rest);
    const r = await this.request(first, (id) => ({ t: 'ask', id, q: { kind: 'inventory', others } }), ASK_TIMEOUT_MS);
    return r?.value as InventoryReport | undefined;
  }

  private async snapshots(slots: Slot[]): Promise<unknown[]> {
    const answers = await Promise.all(slots.map((s) => this.request(s, (id) => ({ t: 'ask', id, q: 'migrationSnapshot' }), ASK_TIMEOUT_MS)));
    return answers.filter((a) => a !== undefined && a.error === undefined && a.value !== undefined).map((a) => a!.value);
  }

  async sharedStatus(): Promise<{ redis: 'connected' | 'unavailable'; detail: string } | undefined> {
    const all = (await this.askAll<{ redis: 'connected' | 'unavailable'; detail: string } | undefined>('sharedStatus')).filter((s) => s !== undefined);
    return all.find((s) => s.redis === 'unavailable') ?? all[0];
  }

  async metricsText(): Promise<{ contentType: string; text: string } | undefined> {
    if (this.metrics === undefined) return undefined;
    const { AggregatorRegistry } = await import('prom-client');
    const workers = (await this.askAll<unknown[]>('metrics')).filter((m) => m !== undefined);
    const registry = AggregatorRegistry.aggregate([...workers, await this.metrics.registry.getMetricsAsJSON()] as never);
    // prom-client 15 writes NaN as "Nan"; the exposition format (and strict parsers) want "NaN".
    return { contentType: registry.contentType, text: (await registry.metrics()).replace(/^([^#\n].*) Nan$/gm, '$1 NaN') };
  }

  /** Stops watching, drains every worker (each within server.drainTimeoutMs), then closes the admin API. */
  stop(): Promise<void> {
    this.stopping ??= this.drainAll();
    return this.stopping;
  }

  private async drainAll(): Promise<void> {
    this.draining = true;
    this.control.stop();
    for (const s of this.slots) if (s.restart) clearTimeout(s.restart);
    const live = this.slots.map((s) => s.worker).filter((w): w is Worker => w !== undefined && !w.isDead());
    this.log.info({ workers: live.length }, 'draining every worker');
    const exited = Promise.all(live.map((w) => new Promise<void>((resolve) => (w.isDead() ? resolve() : w.once('exit', () => resolve())))));
    for (const s of this.slots) this.send(s, { t: 'stop' });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, this.table.config.server.drainTimeoutMs + 5_000)))]);
    clearTimeout(timer);
    for (const w of live) if (!w.isDead()) w.kill('SIGKILL');
    if (this.admin !== undefined) {
      const admin = this.admin;
      await new Promise<void>((resolve) => {
        admin.close(() => resolve());
        admin.closeAllConnections();
      });
    }
    this.log.info('stopped');
    await this.loggers.settled();
    this.loggers.close();
  }
}
