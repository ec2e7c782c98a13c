import type { LoadedTable } from '../config/load';
import type { Policy } from '../ratelimit/gcra';
import type { CanaryEvent, Counts, SharedCounts } from '../state/peers';

/**
 * Messages between the primary and its workers (server.workers), over the
 * cluster IPC channel with structured-clone serialization. The primary owns
 * the route table, the admin API and what the workers share (canary
 * decisions and counts, rate-limit allowance); workers serve traffic.
 */

/** What the admin API asks every worker. */
export type Question =
  | 'upstreams'
  | 'breakerHistory'
  | 'canaries'
  | 'shadows'
  | 'metrics'
  | 'sharedStatus'
  | 'migrationSnapshot'
  | { kind: 'migrationReport'; others: unknown[] }
  | { kind: 'inventory'; others: unknown[] }
  | { kind: 'shadowSamples'; route: string }
  | { kind: 'resetCanary'; route: string }
  | { kind: 'resetShadow'; route: string };

export type ToWorker =
  /** A table version to serve; the first one starts the worker. */
  | { t: 'table'; id: number; table: LoadedTable; port?: number; host?: string }
  | { t: 'ask'; id: number; q: Question }
  /** A canary decision made by another worker (or remembered by the primary for a new one). */
  | { t: 'canary'; e: CanaryEvent }
  /** The other workers' counts, summed per key. */
  | { t: 'counts'; others: Record<string, Counts> }
  | { t: 'lease'; id: number; r: { granted: number; remaining: number; resetSeconds: number } }
  /** Drain and exit. */
  | { t: 'stop' };

export type FromWorker =
  /** Listening for messages: the primary answers with the table to start with. */
  | { t: 'hello' }
  | { t: 'ready'; version: string; port: number }
  | { t: 'applied'; id: number; version: string; error?: string }
  | { t: 'answer'; id: number; value?: unknown; error?: string }
  | { t: 'canary'; e: CanaryEvent }
  | { t: 'counts'; counts: SharedCounts[] }
  | { t: 'lease'; id: number; key: string; p: Policy; want: number }
  /** A TLS files reload in this worker: the primary reports it (once for all workers). */
  | { t: 'tls'; result: { ok: true; changes: string[] } | { ok: false; file: string; message: string } };

/** The environment variable that makes `strangler start` a worker, with its slot number. */
export const WORKER_ENV = 'STRANGLER_WORKER';
