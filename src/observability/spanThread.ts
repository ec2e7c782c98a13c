import { parentPort, workerData } from 'node:worker_threads';
import type { TracingConfig } from '../config/schema';
import { OtelSink } from './otel';

/**
 * The span thread (see spanRecorder.ts): makes the spans the request thread
 * recorded with the OpenTelemetry SDK, and sends them to the collector. Its
 * counts go to the shared counters; it answers only `flush`.
 */
const { config, counters } = workerData as { config: TracingConfig; counters: Int32Array };
const sink = new OtelSink(config, counters);

parentPort!.on('message', (m: unknown[] | 'flush') => {
  if (m === 'flush') void sink.flush().then(() => parentPort!.postMessage('flushed'));
  else sink.add(m);
});
