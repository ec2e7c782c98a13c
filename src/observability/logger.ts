import { mkdirSync, openSync, write, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import pino, { type DestinationStream, type Logger } from 'pino';
import type { LogConfig } from '../config/schema';
import { AccessLog } from './accessLog';

const INFO_ENABLED = new Set(['info', 'debug', 'trace']);

export type { Logger };

/**
 * Defence in depth: the gateway logs allow-listed fields only, but should a
 * header object ever reach a log call, these paths are censored.
 */
const REDACT = [
  '*.authorization',
  '*.cookie',
  '*.set-cookie',
  '*.proxy-authorization',
  '*.x-api-key',
  '*.headers.authorization',
  '*.headers.cookie',
  '*.headers["set-cookie"]',
  '*.headers["proxy-authorization"]',
  '*.headers["x-api-key"]',
  'token',
  'secret',
  'password',
];

/** A filled batch on its way to the file: bytes `off` to `end` of `buf` are still to be written. */
interface Pending {
  buf: Buffer;
  off: number;
  end: number;
}

/**
 * Log lines encoded straight into a 64 KiB buffer, written to the file
 * descriptor when the buffer is full or every 200 ms, whichever comes first,
 * with asynchronous `fs.write` calls made one at a time (so batches land in
 * order). A busy gateway makes one write per ~200 lines, and a line is garbage
 * as soon as it is encoded.
 *
 * The buffers are recycled (two are enough: one filling, one being written).
 * A fresh 64 KiB buffer per batch, as handing batches to pino's sonic-boom
 * needs, lives until its write completes, so it is promoted to the old
 * generation; the external memory that piles up there forced a mark-compact
 * every 2-3 s under load, 5-7 ms each, most of it sweeping array buffers, and
 * that was the p99 of the benchmark's *full* row.
 */
export class LineBatch implements DestinationStream {
  private buf: Buffer;
  private used = 0;
  private closed = false;
  private readonly timer: NodeJS.Timeout;
  /** Filled batches not yet written, oldest first; the first is being written while `writing`. */
  private readonly queue: Pending[] = [];
  private writing = false;
  private readonly spare: Buffer[] = [];
  private waiters: Array<() => void> = [];
  private reported = false;

  constructor(
    /** Where the lines go: a file opened for appending, or stdout. */
    private readonly fd: number,
    private readonly size = 65_536,
    everyMs = 200,
  ) {
    this.buf = Buffer.allocUnsafe(size);
    this.timer = setInterval(() => this.flush(), everyMs);
    this.timer.unref();
    liveBatches.add(this);
  }

  write(line: string): void {
    // After shutdown's flush: written as it comes.
    if (this.closed) return this.writeNow(line);
    // UTF-8 needs at most 3 bytes per UTF-16 unit.
    if (this.used + line.length * 3 > this.size) {
      this.flush();
      if (line.length * 3 > this.size) {
        const big = Buffer.from(line, 'utf8');
        this.queue.push({ buf: big, off: 0, end: big.length });
        return this.next();
      }
    }
    this.used += this.buf.write(line, this.used, 'utf8');
  }

  /** Starts writing what is pending (asynchronously). */
  flush(): void {
    if (this.used === 0) return;
    this.queue.push({ buf: this.buf, off: 0, end: this.used });
    this.buf = this.spare.pop() ?? Buffer.allocUnsafe(this.size);
    this.used = 0;
    this.next();
  }

  /** Resolves once every batch handed over so far is written (graceful shutdown waits for it). */
  settled(): Promise<void> {
    this.flush();
    if (!this.writing && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private next(): void {
    if (this.writing) return;
    const p = this.queue[0];
    if (p === undefined) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
      return;
    }
    this.writing = true;
    write(this.fd, p.buf, p.off, p.end - p.off, null, this.written);
  }

  private readonly written = (err: NodeJS.ErrnoException | null, n: number): void => {
    this.writing = false;
    const p = this.queue[0]!;
    if (err !== null) {
      // A pipe that is full (stdout read slowly): try again shortly.
      if (err.code === 'EAGAIN') {
        // Not unref'd: a graceful stop waiting for this batch must not let the process exit under it.
        setTimeout(() => this.next(), 10);
        return;
      }
      // A full disk or a closed descriptor: this batch is lost; say so once, keep serving.
      if (!this.reported) {
        this.reported = true;
        process.stderr.write(`strangler: cannot write a log batch (${err.code ?? err.message}); lines are being dropped\n`);
      }
      p.off = p.end;
    } else p.off += n;
    if (p.off >= p.end) {
      this.queue.shift();
      if (p.buf.length === this.size && this.spare.length < 2) this.spare.push(p.buf);
    }
    this.next();
  };

  private writeNow(line: string): void {
    const b = Buffer.from(line, 'utf8');
    writeAllSync(this.fd, b, 0, b.length, Date.now() + SYNC_PATIENCE_MS);
  }

  /**
   * Shutdown: everything pending reaches the file or pipe before this returns.
   * A batch whose asynchronous write is under way is left to it (graceful
   * shutdown waits for it first, see settled()); the rest is written here.
   */
  flushSync(): void {
    const deadline = Date.now() + SYNC_PATIENCE_MS;
    for (let i = this.writing ? 1 : 0; i < this.queue.length; i++) {
      const p = this.queue[i]!;
      p.off = writeAllSync(this.fd, p.buf, p.off, p.end, deadline);
    }
    this.queue.length = this.writing ? 1 : 0;
    writeAllSync(this.fd, this.buf, 0, this.used, deadline);
    this.used = 0;
  }

  /** Flushes and stops batching; a line written after this is written as it comes. */
  close(): void {
    this.flushSync();
    this.closed = true;
    clearInterval(this.timer);
    liveBatches.delete(this);
  }
}

/** How long a synchronous flush keeps retrying a full pipe (stdout read slowly) before giving up on the rest. */
const SYNC_PATIENCE_MS = 2000;
const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes `buf[off..end)` synchronously. A full non-blocking pipe (EAGAIN) is
 * retried every 5 ms until `deadline`; any other error, or the deadline,
 * gives up on the rest (the descriptor is gone, or nobody reads it).
 * Returns how far it got.
 */
function writeAllSync(fd: number, buf: Buffer, off: number, end: number, deadline: number): number {
  while (off < end) {
    try {
      off += writeSync(fd, buf, off, end - off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || Date.now() >= deadline) return end;
      Atomics.wait(pause, 0, 0, 5);
    }
  }
  return off;
}

/** Batches not closed yet: whatever they hold is written when the process exits, however it exits. */
const liveBatches = new Set<LineBatch>();
process.on('exit', () => {
  for (const b of liveBatches) b.flushSync();
});

export interface LogOutputs {
  /** Where operational logs go; default stdout (asynchronous, flushed on shutdown). */
  main?: DestinationStream;
  /** Where the access log goes when `log.access` is `stdout`; default: the main destination. */
  access?: DestinationStream;
}

export interface Loggers {
  root: Logger;
  /** null when the access log is off. */
  access: AccessLog | null;
  flush(): void;
  /** Resolves once the batches handed to the files so far are written (asynchronously). */
  settled(): Promise<void>;
  /** Shutdown: writes everything pending and stops the batch timers. */
  close(): void;
}

/**
 * Opened here, synchronously, at startup: a path that cannot be written is a
 * clear startup error, and the destination is ready at once, so lines logged just
 * before an early exit are written too (an asynchronously opened one is not).
 */
function openLogFile(path: string): number {
  try {
    mkdirSync(dirname(path), { recursive: true });
    return openSync(path, 'a');
  } catch (err) {
    throw new Error(`cannot open the access log ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function wantsPretty(cfg: LogConfig): boolean {
  if (cfg.format) return cfg.format === 'pretty';
  return process.stdout.isTTY === true && process.env.NODE_ENV !== 'production';
}

export function createLoggers(cfg: LogConfig, outputs: LogOutputs = {}): Loggers {
  // A worker of server.workers says which one it is in every line.
  const worker = process.env.STRANGLER_WORKER;
  const base = { level: cfg.level, redact: { paths: REDACT, censor: '***' }, base: worker === undefined ? { pid: process.pid } : { pid: process.pid, worker: Number(worker) } };
  const asyncStdout = () => new LineBatch(1);
  let mainDest: DestinationStream;
  if (wantsPretty(cfg)) {
    // Loaded only when wanted: a developer's terminal, never production.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const pretty = require('pino-pretty') as (o: object) => DestinationStream;
    mainDest = pretty({ colorize: !outputs.main, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', destination: outputs.main ?? 1 });
  } else mainDest = outputs.main ?? asyncStdout();
  const root = pino(base, mainDest);

  let access: AccessLog | null = null;
  let accessDest: DestinationStream | undefined;
  // Access lines are info-level lines: a quieter level turns them off, as it would for any info line.
  if (cfg.access === 'off' || !INFO_ENABLED.has(cfg.level)) access = null;
  else if (cfg.access === 'stdout') access = outputs.access ? new AccessLog((accessDest = outputs.access), undefined) : new AccessLog(mainDest, 'access');
  else {
    const fd = openLogFile(cfg.access);
    access = new AccessLog((accessDest = new LineBatch(fd)), undefined);
  }

  const flush = () => {
    for (const d of [mainDest, accessDest]) {
      const sonic = d as DestinationStream & { flushSync?: () => void };
      try {
        sonic?.flushSync?.();
      } catch {
        // not ready yet (nothing written) or not a sonic-boom stream
      }
    }
  };
  const settled = async () => {
    for (const d of [mainDest, accessDest]) if (d instanceof LineBatch) await d.settled();
  };
  const close = () => {
    for (const d of [mainDest, accessDest]) if (d instanceof LineBatch) d.close();
    flush();
  };
  return { root, access, flush, settled, close };
}
