import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { TracingConfig } from '../config/schema';
import { newSpanId, newTraceId } from './requestId';
import type { Attributes, AttributeValue, RequestTrace, TraceSpan, Tracer } from './tracing';

/**
 * Tracing on the request's thread: no OpenTelemetry here. A recorded
 * request's spans are written down as plain values (ids, name, times, the
 * attributes object) in a flat array, and handed in batches to the span
 * thread (`spanThread.ts`), where the OpenTelemetry SDK makes them spans,
 * encodes them as OTLP and sends them to the collector.
 *
 * Why a thread: measured on the bench's table with the SDK's spans and the
 * OTLP encoding on the request thread, `sampleRatio: 0.1` cost 36–45 µs of CPU
 * per request (recorded or not), where the spans' own frames accounted for
 * about 11: the rest was the proxy's own code running slower beside them
 * (every native and JIT frame a little slower, the parser included), and it
 * did not shrink with the ratio (the first 10 % cost 40 µs, the next 90 %
 * another 50). Recording plain values instead measured 1.04 × the requests of
 * tracing off at 0.1 (docs/performance.md#tracing).
 */

/** Slots per recorded span in a batch: kind, traceId, spanId, parent (or linked) traceId and spanId, name, start, end, error, attributes. */
export const SLOTS = 10;
export const SERVER = 0;
export const CHILD = 1;
export const LINKED = 2;

/**
 * Where recorded spans go: the span thread, or the SDK in this thread (where
 * the compiled thread is missing, and in the benchmark's in-process measure).
 * `counters`: spans exported, dropped with the queue full, dropped when an
 * export failed ([EXPORTED], [QUEUE_FULL], [EXPORT_FAILED]): written by the
 * sink, read here; the three together are the spans it is done with.
 */
export interface SpanSink {
  readonly counters: Int32Array<ArrayBufferLike>;
  /** `records`: SLOTS values per span (see RecordingTracer.record). The sink owns the array from then on. */
  add(records: unknown[]): void;
  /** Exports what the sink holds, bounded by the export timeout. */
  flush(): Promise<void>;
  close(): void;
  /** Spans handed to the sink that it lost (its thread died with them), counted as failed exports. */
  lost?(): number;
}
export const EXPORTED = 0;
export const QUEUE_FULL = 1;
export const EXPORT_FAILED = 2;

/** The spans a sink's counters say it is done with: exported or dropped. */
function counted(c: Int32Array<ArrayBufferLike>): number {
  return Atomics.load(c, EXPORTED) + Atomics.load(c, QUEUE_FULL) + Atomics.load(c, EXPORT_FAILED);
}

/** Spans handed to a sink at once: at most this many, or after this long. */
const HANDOFF_SPANS = 256;
const HANDOFF_MS = 100;

const ORIGIN = performance.timeOrigin;

export class RecordingTracer implements Tracer {
  /** Trace ids whose last 32 bits are below this are recorded. */
  private readonly bound: number;
  private batch: unknown[] = [];
  private spans = 0;
  /** Spans handed to the sink, and how many of them it was done with when last asked: in flight is the difference. */
  private handed = 0;
  private settled = 0;
  private queueFull = 0;
  private readonly handoffSpans: number;
  private readonly handoffMs: number;
  private timer: NodeJS.Timeout | undefined = undefined;
  private stopped = false;

  constructor(
    readonly config: TracingConfig,
    private readonly sink: SpanSink,
  ) {
    this.bound = config.sampleRatio >= 1 ? 0x100000000 : Math.floor(config.sampleRatio * 0x100000000);
    this.handoffSpans = Math.min(HANDOFF_SPANS, config.maxExportBatchSize);
    this.handoffMs = Math.min(HANDOFF_MS, config.scheduledDelayMs);
  }

  sampled(parentFlags: string | undefined, traceId: string): boolean {
    if (parentFlags !== undefined) return (parseInt(parentFlags, 16) & 1) !== 0;
    // The trace id's last 8 hex digits (random in a W3C trace id) against the ratio: the same decision for the same
    // trace on every replica. (The SDK's TraceIdRatioBasedSampler parses all 32 digits: 1.2 µs a request, measured.)
    return parseInt(traceId.slice(24), 16) < this.bound;
  }

  start(traceId: string, parentSpanId: string | undefined, startedAt: number): RequestTrace {
    return new RecordedRequest(this, traceId, newSpanId(), parentSpanId, ORIGIN + startedAt);
  }

  /**
   * One ended span. `parentTraceId`/`parentSpanId`: the parent's (a server
   * span's remote parent, a child's server span) or, for LINKED, the span it
   * links to. Times in ms since the epoch. `error`: true (a failure), an
   * error code (a failure, named), or undefined.
   */
  record(kind: number, traceId: string, spanId: string, parentTraceId: string | undefined, parentSpanId: string | undefined, name: string, start: number, end: number, error: string | true | undefined, attributes: Attributes): void {
    if (this.stopped) return;
    // The bound: spans here and in the sink, at most maxQueueSize; past it new spans are dropped, never waited for.
    if (this.spans + this.handed - this.settled >= this.config.maxQueueSize) {
      this.settled = this.done();
      if (this.spans + this.handed - this.settled >= this.config.maxQueueSize) {
        this.queueFull++;
        return;
      }
    }
    this.batch.push(kind, traceId, spanId, parentTraceId, parentSpanId, name, start, end, error, attributes);
    if (++this.spans >= this.handoffSpans) this.handoff();
    else this.timer ??= setTimeout(() => this.handoff(), this.handoffMs).unref();
  }

  private done(): number {
    return counted(this.sink.counters) + (this.sink.lost?.() ?? 0);
  }

  private handoff(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.spans === 0) return;
    const batch = this.batch;
    this.handed += this.spans;
    this.batch = [];
    this.spans = 0;
    this.sink.add(batch);
  }

  counts(): { exported: number; queueFull: number; exportFailed: number } {
    const c = this.sink.counters;
    return { exported: Atomics.load(c, EXPORTED), queueFull: this.queueFull + Atomics.load(c, QUEUE_FULL), exportFailed: Atomics.load(c, EXPORT_FAILED) + (this.sink.lost?.() ?? 0) };
  }

  async shutdown(): Promise<void> {
    this.handoff();
    this.stopped = true;
    await this.sink.flush();
    this.sink.close();
  }
}

class RecordedRequest implements RequestTrace {
  constructor(
    private readonly tracer: RecordingTracer,
    private readonly traceId: string,
    private readonly spanId: string,
    private readonly parentSpanId: string | undefined,
    private readonly startedAt: number,
  ) {}

  child(name: string, attributes: Attributes): TraceSpan {
    return new RecordedSpan(this.tracer, CHILD, this.traceId, this.traceId, this.spanId, name, attributes);
  }

  linked(name: string, attributes: Attributes): TraceSpan {
    return new RecordedSpan(this.tracer, LINKED, newTraceId(), this.traceId, this.spanId, name, attributes);
  }

  end(name: string, attributes: Attributes, error: boolean): void {
    const parent = this.parentSpanId;
    this.tracer.record(SERVER, this.traceId, this.spanId, parent === undefined ? undefined : this.traceId, parent, name, this.startedAt, ORIGIN + performance.now(), error ? true : undefined, attributes);
  }
}

class RecordedSpan implements TraceSpan {
  readonly traceparent: string;
  private readonly spanId = newSpanId();
  private readonly start = ORIGIN + performance.now();
  private ended = false;

  constructor(
    private readonly tracer: RecordingTracer,
    private readonly kind: number,
    private readonly traceId: string,
    private readonly parentTraceId: string,
    private readonly parentSpanId: string,
    private readonly name: string,
    private readonly attributes: Attributes,
  ) {
    this.traceparent = `00-${traceId}-${this.spanId}-01`;
  }

  set(key: string, value: AttributeValue | undefined): void {
    if (value !== undefined) this.attributes[key] = value;
  }

  end(error?: string): void {
    if (this.ended) return;
    this.ended = true;
    this.tracer.record(this.kind, this.traceId, this.spanId, this.parentTraceId, this.parentSpanId, this.name, this.start, ORIGIN + performance.now(), error, this.attributes);
  }
}

/**
 * The span thread: started at the first handoff, given each batch by
 * postMessage (a structured clone, made in C++), and it counts into shared
 * memory, so this thread never handles a message from it. If it dies, the
 * spans it held are counted as failed exports and the next handoff starts a
 * new one.
 */
export function threadSink(config: TracingConfig, file: string): SpanSink {
  const counters = new Int32Array(new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT));
  let worker: Worker | undefined;
  let handed = 0;
  let lost = 0;
  let closed = false;
  /** What was handed over and not counted by a thread is lost: its thread died, or was ended, with it. */
  const countLost = () => {
    lost = handed - counted(counters);
  };
  const start = (): Worker => {
    // A small young generation: the thread holds a batch or two at a time.
    const w = new Worker(file, { workerData: { config, counters }, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
    w.unref();
    const gone = () => {
      if (worker !== w) return;
      worker = undefined;
      countLost();
    };
    w.on('error', gone);
    w.on('exit', gone);
    worker = w;
    return w;
  };
  return {
    counters,
    lost: () => lost,
    add(records) {
      handed += records.length / SLOTS;
      if (closed) countLost();
      else (worker ?? start()).postMessage(records);
    },
    async flush() {
      const w = worker;
      if (w === undefined) return;
      await new Promise<void>((resolve) => {
        const finish = () => {
          clearTimeout(guard);
          w.off('message', finish);
          w.off('exit', finish);
          resolve();
        };
        const guard = setTimeout(finish, config.otlp.timeoutMs + 1000).unref();
        w.on('message', finish);
        w.on('exit', finish);
        w.postMessage('flush');
      });
    },
    close() {
      closed = true;
      const w = worker;
      worker = undefined;
      countLost();
      if (w !== undefined) void w.terminate();
    },
  };
}

/** The tracer for `config`: spans recorded here, made and sent by the span thread. */
export function recordingTracer(config: TracingConfig): RecordingTracer {
  // Under ts-jest this file is TypeScript; the compiled thread lives in dist/ (built before the tests).
  const file = __filename.endsWith('.ts') ? join(__dirname, '..', '..', 'dist', 'src', 'observability', 'spanThread.js') : join(__dirname, 'spanThread.js');
  if (existsSync(file)) return new RecordingTracer(config, threadSink(config, file));
  // A TypeScript-only checkout: the SDK in this thread.
  const { OtelSink } = require('./otel') as typeof import('./otel');
  return new RecordingTracer(config, new OtelSink(config));
}
