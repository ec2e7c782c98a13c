import { performance } from 'node:perf_hooks';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Link, type Span } from '@opentelemetry/api';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOnSampler, BasicTracerProvider, RandomIdGenerator, type IdGenerator, type ReadableSpan, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Tracer as OtelApiTracer } from '@opentelemetry/api';
import type { TracingConfig } from '../config/schema';
import { otlpExporter, type OtlpTransport } from './otlpHttp';
import type { Attributes, AttributeValue, RequestTrace, TraceSpan, Tracer } from './tracing';

export type { OtlpTransport } from './otlpHttp';

/**
 * The OpenTelemetry SDK behind `Tracer` (loaded only when `tracing` is
 * configured). Sampling is decided once per request, before any span exists,
 * so a request that is not recorded costs no span object; recorded ones get
 * a server span, with the attempts, the forward-auth call, JWKS fetches and
 * the shadow copy under or beside it. Spans go to the collector in batches
 * from a bounded queue (`BatchProcessor`): a slow or absent collector
 * costs memory up to the queue's size, and dropped spans are counted.
 */

/** The root span's trace id is the request's own (derived from its request id), set just before the span starts. */
class RequestIds implements IdGenerator {
  next: string | undefined = undefined;
  private readonly random = new RandomIdGenerator();
  generateTraceId(): string {
    const id = this.next;
    this.next = undefined;
    return id ?? this.random.generateTraceId();
  }
  generateSpanId(): string {
    return this.random.generateSpanId();
  }
}

export class OtelTracer implements Tracer {
  private readonly provider: BasicTracerProvider;
  private readonly tracer: OtelApiTracer;
  private readonly ids = new RequestIds();
  /** Trace ids whose last 32 bits are below this are recorded. */
  private readonly bound: number;
  private readonly processor: BatchProcessor;

  private readonly closeTransport: () => void;

  /** `transport`: another way out than OTLP/HTTP (the benchmark's in-process measure). */
  constructor(
    readonly config: TracingConfig,
    transport?: OtlpTransport,
  ) {
    const endpoint = config.otlp.endpoint.replace(/\/+$/, '');
    const http = transport === undefined ? otlpExporter(endpoint.endsWith('/v1/traces') ? endpoint : `${endpoint}/v1/traces`, config.otlp.headers, config.otlp.timeoutMs) : undefined;
    this.closeTransport = http?.close ?? (() => undefined);
    this.processor = new BatchProcessor(transport ?? http!.send, config.maxQueueSize, config.maxExportBatchSize, config.scheduledDelayMs, config.otlp.timeoutMs);
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': config.serviceName }),
      // Spans are only started for recorded requests: the decision was made before (see sampled()).
      sampler: new AlwaysOnSampler(),
      idGenerator: this.ids,
      spanProcessors: [this.processor],
    });
    this.tracer = this.provider.getTracer('strangler');
    this.bound = config.sampleRatio >= 1 ? 0x100000000 : Math.floor(config.sampleRatio * 0x100000000);
  }

  sampled(parentFlags: string | undefined, traceId: string): boolean {
    if (parentFlags !== undefined) return (parseInt(parentFlags, 16) & TraceFlags.SAMPLED) !== 0;
    // The trace id's last 8 hex digits (random in a W3C trace id) against the ratio: the same decision for the same
    // trace on every replica. (The SDK's TraceIdRatioBasedSampler parses all 32 digits: 1.2 µs a request, measured.)
    return parseInt(traceId.slice(24), 16) < this.bound;
  }

  start(method: string, traceId: string, parentSpanId: string | undefined, startedAt: number): RequestTrace {
    const startTime = performance.timeOrigin + startedAt;
    let span: Span;
    if (parentSpanId !== undefined) {
      const parent = trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: parentSpanId, traceFlags: TraceFlags.SAMPLED, isRemote: true });
      span = this.tracer.startSpan(method, { kind: SpanKind.SERVER, startTime }, parent);
    } else {
      this.ids.next = traceId;
      span = this.tracer.startSpan(method, { kind: SpanKind.SERVER, startTime, root: true });
    }
    return new OtelRequestTrace(this.tracer, span);
  }

  counts(): { exported: number; queueFull: number; exportFailed: number } {
    return this.processor.counts;
  }

  async shutdown(): Promise<void> {
    await this.provider.shutdown();
    this.closeTransport();
  }
}

class OtelRequestTrace implements RequestTrace {
  constructor(
    private readonly tracer: OtelApiTracer,
    private readonly span: Span,
  ) {}

  // Attributes are set on the span, not passed to startSpan: setAttributes skips undefined values, where
  // startSpan's copy of them would check each one twice (and the sampler, always on here, reads none).
  child(name: string, attributes: Attributes): TraceSpan {
    const span = this.tracer.startSpan(name, { kind: SpanKind.CLIENT }, trace.setSpan(ROOT_CONTEXT, this.span));
    span.setAttributes(attributes);
    return new OtelSpan(span);
  }

  linked(name: string, attributes: Attributes): TraceSpan {
    const links: Link[] = [{ context: this.span.spanContext() }];
    const span = this.tracer.startSpan(name, { kind: SpanKind.CLIENT, root: true, links });
    span.setAttributes(attributes);
    return new OtelSpan(span);
  }

  end(name: string, attributes: Attributes, error: boolean): void {
    this.span.updateName(name);
    this.span.setAttributes(attributes);
    if (error) this.span.setStatus({ code: SpanStatusCode.ERROR });
    this.span.end();
  }
}

class OtelSpan implements TraceSpan {
  readonly traceparent: string;
  constructor(private readonly span: Span) {
    const c = span.spanContext();
    this.traceparent = `00-${c.traceId}-${c.spanId}-01`;
  }
  set(key: string, value: AttributeValue | undefined): void {
    if (value !== undefined) this.span.setAttribute(key, value);
  }
  end(error?: string): void {
    if (error !== undefined) {
      this.span.setAttribute('strangler.error.code', error);
      this.span.setStatus({ code: SpanStatusCode.ERROR, message: error });
    }
    this.span.end();
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
  readonly counts = { exported: 0, queueFull: 0, exportFailed: 0 };
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
      this.counts.queueFull++;
      return;
    }
    let bytes: Uint8Array | undefined;
    try {
      bytes = ProtobufTraceSerializer.serializeRequest([span]);
    } catch {
      bytes = undefined;
    }
    if (bytes === undefined) {
      this.counts.exportFailed++;
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
        if (ok) this.counts.exported += batch.spans;
        else this.counts.exportFailed += batch.spans;
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
    this.counts.exportFailed += this.held;
    this.ready = [];
    this.pos = 0;
    this.spans = 0;
    this.held = 0;
  }
}

/** A batch buffer's first size (a batch of 512 spans is about 200 KB; it doubles as needed, off the JS heap). */
const BATCH_BUFFER_BYTES = 64 * 1024;
