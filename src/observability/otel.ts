import { performance } from 'node:perf_hooks';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type SpanOptions } from '@opentelemetry/api';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOnSampler, BasicTracerProvider, type IdGenerator, type ReadableSpan, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Tracer as OtelApiTracer } from '@opentelemetry/api';
import type { TracingConfig } from '../config/schema';
import { otlpHttp, type OtlpTransport } from './otlpHttp';
import { EXPORT_FAILED, EXPORTED, LINKED, QUEUE_FULL, SERVER, SLOTS, type SpanSink } from './spanRecorder';
import type { Attributes } from './tracing';

export type { OtlpTransport } from './otlpHttp';

/**
 * The OpenTelemetry SDK, in the span thread (`spanThread.ts`; in the
 * request's thread only where the compiled thread is missing). It is given
 * the spans the request thread recorded, as plain values
 * (`spanRecorder.ts`), and makes each an SDK span with the ids, times and
 * attributes recorded, ended at once: the batch processor encodes it and
 * sends it to the collector in batches, from a bounded queue.
 */

/** The ids of the span being made: the ones the request thread chose (and sent upstream in `traceparent`). */
class RecordedIds implements IdGenerator {
  traceId = '';
  spanId = '';
  generateTraceId(): string {
    return this.traceId;
  }
  generateSpanId(): string {
    return this.spanId;
  }
}

export class OtelSink implements SpanSink {
  readonly counters: Int32Array<ArrayBufferLike>;
  private readonly provider: BasicTracerProvider;
  private readonly tracer: OtelApiTracer;
  private readonly ids = new RecordedIds();
  private readonly processor: BatchProcessor;
  private readonly closeTransport: () => void;

  /** `counters`: shared with the request thread; `transport`: another way out than OTLP/HTTP (tests, the benchmark's in-process measure). */
  constructor(config: TracingConfig, counters: Int32Array<ArrayBufferLike> = new Int32Array(3), transport?: OtlpTransport) {
    this.counters = counters;
    const endpoint = config.otlp.endpoint.replace(/\/+$/, '');
    const http = transport === undefined ? otlpHttp(endpoint.endsWith('/v1/traces') ? endpoint : `${endpoint}/v1/traces`, config.otlp.headers, config.otlp.timeoutMs) : undefined;
    this.closeTransport = http?.close ?? (() => undefined);
    this.processor = new BatchProcessor(transport ?? http!.send, counters, config.maxQueueSize, config.maxExportBatchSize, config.scheduledDelayMs, config.otlp.timeoutMs);
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': config.serviceName }),
      // Only recorded requests' spans come here: the decision was made on the request's thread.
      sampler: new AlwaysOnSampler(),
      idGenerator: this.ids,
      spanProcessors: [this.processor],
    });
    this.tracer = this.provider.getTracer('strangler');
  }

  add(records: unknown[]): void {
    for (let i = 0; i + SLOTS <= records.length; i += SLOTS) {
      try {
        this.one(records, i);
      } catch {
        Atomics.add(this.counters, EXPORT_FAILED, 1);
      }
    }
  }

  /** The span recorded at records[i..i+SLOTS) (layout: RecordingTracer.record). */
  private one(r: unknown[], i: number): void {
    const kind = r[i] as number;
    const parentTraceId = r[i + 3] as string | undefined;
    const parentSpanId = r[i + 4] as string | undefined;
    const error = r[i + 8] as string | true | undefined;
    this.ids.traceId = r[i + 1] as string;
    this.ids.spanId = r[i + 2] as string;
    const options: SpanOptions = { kind: kind === SERVER ? SpanKind.SERVER : SpanKind.CLIENT, startTime: r[i + 6] as number };
    let parent = ROOT_CONTEXT;
    if (kind === LINKED) {
      options.root = true;
      options.links = [{ context: { traceId: parentTraceId!, spanId: parentSpanId!, traceFlags: TraceFlags.SAMPLED } }];
    } else if (parentSpanId !== undefined) {
      parent = trace.setSpanContext(ROOT_CONTEXT, { traceId: parentTraceId!, spanId: parentSpanId, traceFlags: TraceFlags.SAMPLED, isRemote: kind === SERVER });
    } else options.root = true;
    const span = this.tracer.startSpan(r[i + 5] as string, options, parent);
    // setAttributes skips undefined values.
    span.setAttributes(r[i + 9] as Attributes);
    if (typeof error === 'string') {
      span.setAttribute('strangler.error.code', error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: error });
    } else if (error === true) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end(r[i + 7] as number);
  }

  flush(): Promise<void> {
    return this.processor.forceFlush();
  }

  close(): void {
    void this.provider.shutdown().then(this.closeTransport, this.closeTransport);
  }
}

/**
 * Ended spans, encoded as they end and sent in batches, from a queue of
 * bounded size: when it is full (the collector slow or down), new spans are
 * dropped and counted, never waited for. One export at a time, each bounded
 * by the export timeout.
 *
 * Each span is encoded by the library's `ProtobufTraceSerializer` the moment
 * it ends, as an OTLP request of its own, and its bytes are appended to the
 * batch's buffer: protobuf merges concatenated messages, so a batch is one
 * valid request whose `resource_spans` are its spans. Nothing the garbage
 * collector traces outlives the request, where holding the SDK's span
 * objects (about 15 objects each) until their batch left kept them alive
 * across young collections. At sampleRatio 1 this gave about 1.05 × the
 * requests of encoding at export (four paired runs, 1.008–1.116; see
 * docs/performance.md#tracing). The price is the resource and scope repeated
 * per span: about 50 bytes on a span of 300 to 400.
 *
 * (The SDK's BatchSpanProcessor keeps span objects until export, and only
 * logs its drops; the gateway counts them in /metrics.)
 */
export class BatchProcessor implements SpanProcessor {
  /** The batch being filled: `pos` bytes of encoded spans, `spans` of them. */
  private buf: Buffer;
  private pos = 0;
  private spans = 0;
  /** Batches full or due, oldest first. */
  private ready: Array<{ body: Buffer; spans: number }> = [];
  /** Spans held (ready and being filled), against maxQueue. */
  private held = 0;
  private timer: NodeJS.Timeout | undefined = undefined;
  private exporting: Promise<void> | undefined = undefined;
  private stopped = false;

  constructor(
    private readonly send: OtlpTransport,
    /** Spans exported, dropped (queue full), failed ([EXPORTED], [QUEUE_FULL], [EXPORT_FAILED]): read by the request thread. */
    private readonly counters: Int32Array<ArrayBufferLike>,
    private readonly maxQueue: number,
    private readonly maxBatch: number,
    private readonly delayMs: number,
    private readonly timeoutMs: number,
  ) {
    this.buf = Buffer.allocUnsafeSlow(BATCH_BUFFER_BYTES);
  }

  onStart(): void {
    // Nothing to do when a span starts.
  }

  onEnd(span: ReadableSpan): void {
    if (this.stopped) return;
    if (this.held >= this.maxQueue) {
      Atomics.add(this.counters, QUEUE_FULL, 1);
      return;
    }
    let bytes: Uint8Array | undefined;
    try {
      bytes = ProtobufTraceSerializer.serializeRequest([span]);
    } catch {
      bytes = undefined;
    }
    if (bytes === undefined) {
      Atomics.add(this.counters, EXPORT_FAILED, 1);
      return;
    }
    if (this.pos + bytes.length > this.buf.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.pos + bytes.length));
      this.buf.copy(bigger, 0, 0, this.pos);
      this.buf = bigger;
    }
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
    this.spans++;
    this.held++;
    if (this.spans >= this.maxBatch) {
      this.seal();
      this.exportNext();
    } else this.timer ??= setTimeout(() => this.exportNext(), this.delayMs).unref();
  }

  /** The batch being filled becomes ready to leave; a new buffer takes its place. */
  private seal(): void {
    if (this.spans === 0) return;
    this.ready.push({ body: this.buf.subarray(0, this.pos), spans: this.spans });
    this.buf = Buffer.allocUnsafeSlow(BATCH_BUFFER_BYTES);
    this.pos = 0;
    this.spans = 0;
  }

  private exportNext(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.exporting !== undefined) return;
    if (this.ready.length === 0) this.seal();
    const batch = this.ready.shift();
    if (batch === undefined) return;
    this.held -= batch.spans;
    let finished = false;
    const exporting = new Promise<void>((resolve) => {
      let settled = false;
      const done = (ok: boolean) => {
        if (settled) return;
        settled = true;
        clearTimeout(guard);
        Atomics.add(this.counters, ok ? EXPORTED : EXPORT_FAILED, batch.spans);
        finished = true;
        this.exporting = undefined;
        resolve();
        // More waiting: a full batch goes now, a partial one after the delay.
        if (this.ready.length > 0) setImmediate(() => this.exportNext());
        else if (this.spans > 0 && !this.stopped) this.timer ??= setTimeout(() => this.exportNext(), this.delayMs).unref();
      };
      // The transport has its own timeout (which starts only once it has a connection); this one makes
      // sure a batch is never waited for longer, and gives it up, so exports never pile up.
      let cancel: (() => void) | void = undefined;
      const guard = setTimeout(() => {
        done(false);
        cancel?.();
      }, this.timeoutMs + 1000).unref();
      try {
        cancel = this.send(batch.body, done);
      } catch {
        done(false);
      }
    });
    // A transport may answer at once (before the promise above is even assigned): then nothing is under way.
    if (!finished) this.exporting = exporting;
  }

  async forceFlush(): Promise<void> {
    const until = performance.now() + this.timeoutMs + 1000;
    while ((this.ready.length > 0 || this.spans > 0 || this.exporting !== undefined) && performance.now() < until) {
      if (this.exporting === undefined) this.exportNext();
      await this.exporting;
    }
  }

  async shutdown(): Promise<void> {
    await this.forceFlush();
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    // What could not be sent in time is dropped with the process.
    Atomics.add(this.counters, EXPORT_FAILED, this.held);
    this.ready = [];
    this.pos = 0;
    this.spans = 0;
    this.held = 0;
  }
}

/** A batch buffer's first size (a batch of 512 spans is about 200 KB; it doubles as needed, off the JS heap). */
const BATCH_BUFFER_BYTES = 64 * 1024;
