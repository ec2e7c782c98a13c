import type { TracingConfig } from '../config/schema';

/**
 * OpenTelemetry tracing, as the rest of the gateway sees it: no OpenTelemetry
 * import here. The recorder (`./spanRecorder`) is loaded only when the table
 * configures `tracing`, and the SDK (`./otel`) only in the span thread it
 * starts, so a gateway without tracing neither loads nor pays for it.
 */

export type AttributeValue = string | number | boolean;
export type Attributes = Record<string, AttributeValue | undefined>;

/** One span the gateway opened under a request: an upstream attempt, the forward-auth call, a JWKS fetch, a shadow copy. */
export interface TraceSpan {
  /** The `traceparent` for the call this span covers (its own span id): sent with that call. */
  readonly traceparent: string;
  set(key: string, value: AttributeValue | undefined): void;
  /** `error`: the gateway's error code when the call failed. */
  end(error?: string): void;
}

/** A recorded (sampled) request: its server span, and the spans under it. */
export interface RequestTrace {
  /**
   * A span under the request's server span, for a call made on the request's behalf. The span keeps
   * `attributes` (and set() adds to it): pass a new object each time, here and to linked().
   */
  child(name: string, attributes: Attributes): TraceSpan;
  /** A span of a trace of its own, linked to the request's (work done beside it: the parallel run's copy). */
  linked(name: string, attributes: Attributes): TraceSpan;
  /** Ends the server span; `error`: the answer was a failure (5xx or none). */
  end(name: string, attributes: Attributes, error: boolean): void;
}

export interface Tracer {
  readonly config: TracingConfig;
  /**
   * Whether a request is recorded: parent-based (a valid incoming traceparent's
   * sampled flag decides), else `sampleRatio` of the trace ids.
   */
  sampled(parentFlags: string | undefined, traceId: string): boolean;
  /** The server span of a recorded request; `parentSpanId`: the incoming traceparent's span. `startedAt`: performance.now() ms. */
  start(traceId: string, parentSpanId: string | undefined, startedAt: number): RequestTrace;
  /** Spans exported, and dropped (queue full, export failed): for /metrics. */
  counts(): { exported: number; queueFull: number; exportFailed: number };
  /** Exports what is queued (bounded by the export timeout), then stops. */
  shutdown(): Promise<void>;
}

/** Builds the tracer for `config`: spans recorded on this thread, made and sent with the OpenTelemetry SDK on the span thread. */
export function createTracer(config: TracingConfig): Tracer {
  const { recordingTracer } = require('./spanRecorder') as typeof import('./spanRecorder');
  return recordingTracer(config);
}

/**
 * The request whose authentication is running now, synchronously: work it
 * starts on the way (a JWKS fetch for an unknown key) is traced under it.
 * Set and cleared around the call; nothing is kept across an await.
 */
export const authenticating: { trace: RequestTrace | undefined } = { trace: undefined };
