import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableSpan, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { decodeTraces } from '../../test/helpers/otlp';
import type { TracingConfig } from '../config/schema';
import { OtelSink, type OtlpTransport } from './otel';
import { RecordingTracer } from './spanRecorder';

/**
 * Spans recorded as plain values on the request thread, made SDK spans by
 * the sink (here in the same thread: the span thread runs the same code),
 * encoded as they end and concatenated: one export must still be one valid
 * OTLP request, holding the same spans as the library's own encoding of the
 * whole batch would.
 */

const config = (over: Partial<TracingConfig> = {}): TracingConfig => ({
  otlp: { endpoint: 'http://127.0.0.1:9', headers: {}, timeoutMs: 1000 },
  sampleRatio: 1,
  serviceName: 'gateway-under-test',
  maxQueueSize: 2048,
  maxExportBatchSize: 512,
  scheduledDelayMs: 60_000,
  ...over,
});

const traceId = (i: number) => `${'ab'.repeat(12)}${i.toString(16).padStart(8, '0')}`;

function oneRequest(tracer: RecordingTracer, i: number): void {
  const t = tracer.start(traceId(i), i % 2 === 0 ? undefined : 'cdcdcdcdcdcdcdcd', performance.now());
  const a = t.child('attempt app', { 'http.request.method': 'GET', 'strangler.upstream': 'app', 'http.request.resend_count': undefined });
  a.set('http.response.status_code', 200 + i);
  a.end(i === 3 ? 'UPSTREAM_TIMEOUT' : undefined);
  t.end('GET /api/orders/{id}', { 'http.route': '/api/orders/{id}', 'strangler.request_id': `req-${i}`, 'strangler.fallback': i === 1 ? true : undefined, 'strangler.ratio': 0.5 }, i === 3);
}

/** The library's encoding of the spans one batch held, recorded by a second processor beside the gateway's. */
class Recorder implements SpanProcessor {
  readonly spans: ReadableSpan[] = [];
  onStart(): void {}
  onEnd(span: ReadableSpan): void {
    this.spans.push(span);
  }
  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {}
}

describe('BatchProcessor: spans encoded as they end', () => {
  it('sends one OTLP request per batch, decoding to the same spans as the library encoding the batch at once', async () => {
    const bodies: Buffer[] = [];
    const send: OtlpTransport = (body, done) => {
      bodies.push(Buffer.from(body));
      done(true);
    };
    const sink = new OtelSink(config({ maxExportBatchSize: 6 }), undefined, send);
    const tracer = new RecordingTracer(config({ maxExportBatchSize: 6 }), sink);
    const recorder = new Recorder();
    // The provider's processors are fixed at construction: reach the one the sink built to add the oracle.
    (sink as unknown as { provider: { _activeSpanProcessor: { _spanProcessors: SpanProcessor[] } } }).provider._activeSpanProcessor._spanProcessors.push(recorder);
    for (let i = 0; i < 5; i++) oneRequest(tracer, i);
    await tracer.shutdown();

    // 10 spans, batches of 6: two exports, each a valid request on its own.
    expect(bodies).toHaveLength(2);
    const ours = bodies.flatMap((b) => decodeTraces(b));
    expect(ours).toHaveLength(10);
    expect(decodeTraces(bodies[0]!)).toHaveLength(6);
    const library = decodeTraces(Buffer.from(ProtobufTraceSerializer.serializeRequest(recorder.spans)!));
    expect(ours).toEqual(library);
    // And what the spans say, read back.
    const server = ours.filter((s) => s.name === 'GET /api/orders/{id}');
    expect(server.map((s) => s.traceId)).toEqual([0, 1, 2, 3, 4].map(traceId));
    expect(server[1]!.parentSpanId).toBe('cdcdcdcdcdcdcdcd');
    expect(server[1]!.attributes).toEqual({ 'http.route': '/api/orders/{id}', 'strangler.request_id': 'req-1', 'strangler.fallback': true, 'strangler.ratio': 0.5 });
    expect(server[3]!.status?.code).toBe(2);
    const attempts = ours.filter((s) => s.name === 'attempt app');
    expect(attempts[3]!.attributes).toMatchObject({ 'strangler.error.code': 'UPSTREAM_TIMEOUT', 'http.response.status_code': 203 });
    expect(attempts.every((s, i) => s.parentSpanId === server[i]!.spanId && s.service === 'gateway-under-test')).toBe(true);
    expect(tracer.counts()).toEqual({ exported: 10, queueFull: 0, exportFailed: 0 });
  });

  it('holds at most maxQueueSize spans, in both threads and the export under way; the rest are dropped and counted', async () => {
    const pending: Array<(ok: boolean) => void> = [];
    const c = config({ maxExportBatchSize: 4, maxQueueSize: 8 });
    const tracer = new RecordingTracer(
      c,
      new OtelSink(c, undefined, (_body, done) => {
        pending.push(done);
      }),
    );
    // 2 spans a request, handed over 4 at a time: the first 4 leave (and hang), 4 more wait, the other 12 are dropped.
    for (let i = 0; i < 10; i++) oneRequest(tracer, i);
    expect(pending).toHaveLength(1);
    expect(tracer.counts()).toEqual({ exported: 0, queueFull: 12, exportFailed: 0 });
    pending[0]!(false);
    expect(tracer.counts().exportFailed).toBe(4);
    // The next batch goes once the first is answered, and the room it leaves is used again.
    await new Promise((r) => setImmediate(r));
    expect(pending).toHaveLength(2);
    for (let i = 10; i < 12; i++) oneRequest(tracer, i);
    expect(tracer.counts().queueFull).toBe(12);
    pending[1]!(true);
    await new Promise((r) => setImmediate(r));
    pending[2]!(true);
    await tracer.shutdown();
    expect(pending).toHaveLength(3);
    expect(tracer.counts()).toEqual({ exported: 8, queueFull: 12, exportFailed: 4 });
  });
});
