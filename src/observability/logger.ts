import { mkdirSync, openSync, writeSync } from 'node:fs';
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

/**
 * Log lines encoded straight into a 64 KiB buffer and handed to pino's
 * asynchronous destination (sonic-boom, in buffer mode) when it is full, or
 * every 200 ms, whichever comes first. Handing sonic-boom one string per line
 * costs far more than the write itself: it measures and appends to its pending
 * string on every line, and the lines live on the JavaScript heap until the
 * write, surviving young-generation collections. Here a line is garbage as soon
 * as it is encoded, and a busy gateway makes one write per ~200 lines.
 */
export class LineBatch implements DestinationStream {
  private buf: Buffer;
  private used = 0;
  private closed = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly dest: DestinationStream & { flushSync?: () => void },
    /** The destination's file descriptor: a synchronous flush writes the pending lines to it directly. */
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
    // After shutdown's flush: straight to the destination, which pino flushes at exit.
    if (this.closed) return this.writeThrough(line);
    // UTF-8 needs at most 3 bytes per UTF-16 unit.
    if (this.used + line.length * 3 > this.size) {
      this.flush();
      if (line.length * 3 > this.size) return this.writeThrough(line);
    }
    this.used += this.buf.write(line, this.used, 'utf8');
  }

  /** One line handed to the destination as it is (sonic-boom in buffer mode takes Buffers). */
  private writeThrough(line: string): void {
    this.dest.write(Buffer.from(line, 'utf8') as unknown as string);
  }

  /** Hands what is pending to the destination (written asynchronously). */
  flush(): void {
    if (this.used === 0) return;
    const full = this.buf.subarray(0, this.used);
    this.buf = Buffer.allocUnsafe(this.size);
    this.used = 0;
    // sonic-boom in buffer mode takes Buffers; pino's DestinationStream type says string.
    this.dest.write(full as unknown as string);
  }

  /** Shutdown: everything pending reaches the file or pipe before this returns. */
  flushSync(): void {
    try {
      // What the destination holds first, then the pending lines, written here: handing them over
      // would start an asynchronous write that an exiting process never finishes.
      this.dest.flushSync?.();
      if (this.used > 0) writeSync(this.fd, this.buf, 0, this.used);
    } catch {
      // the destination is closed, or the fd is gone: nothing more can be written
    }
    this.used = 0;
  }

  /** Flushes and stops batching; a line written after this goes to the destination as it comes. */
  close(): void {
    this.flushSync();
    this.closed = true;
    clearInterval(this.timer);
    liveBatches.delete(this);
  }
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
  const base = { level: cfg.level, redact: { paths: REDACT, censor: '***' }, base: { pid: process.pid } };
  const asyncStdout = () => new LineBatch(pino.destination({ dest: 1, sync: false, contentMode: 'buffer' }), 1);
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
    access = new AccessLog((accessDest = new LineBatch(pino.destination({ dest: fd, sync: false, contentMode: 'buffer' }), fd)), undefined);
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
  const close = () => {
    for (const d of [mainDest, accessDest]) if (d instanceof LineBatch) d.close();
    flush();
  };
  return { root, access, flush, close };
}
