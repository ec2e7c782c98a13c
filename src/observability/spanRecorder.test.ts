import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TracingConfig } from '../config/schema';
import { RecordingTracer, threadSink } from './spanRecorder';

/**
 * The request thread's side of tracing with a real worker thread: a stand-in
 * for the span thread that counts what it is given as exported, and dies on a
 * span named `die`. What a dead thread held is counted as failed, and the next
 * handoff starts a new thread.
 */

const config: TracingConfig = {
  otlp: { endpoint: 'http://127.0.0.1:9', headers: {}, timeoutMs: 1000 },
  sampleRatio: 1,
  serviceName: 'gateway-under-test',
  maxQueueSize: 2048,
  // Handed over 2 spans at a time: one request.
  maxExportBatchSize: 2,
  scheduledDelayMs: 60_000,
};

const STAND_IN = `
const { parentPort, workerData } = require('node:worker_threads');
parentPort.on('message', (m) => {
  if (m === 'flush') return parentPort.postMessage('flushed');
  if (m.includes('die')) process.exit(1);
  Atomics.add(workerData.counters, 0, m.length / 10);
});`;

const traceId = (i: number) => `${'ab'.repeat(12)}${i.toString(16).padStart(8, '0')}`;

function oneRequest(tracer: RecordingTracer, i: number, name = 'attempt app'): void {
  const t = tracer.start(traceId(i), undefined, performance.now());
  t.child(name, { 'strangler.upstream': 'app' }).end();
  t.end('GET /', { 'http.route': '/' }, false);
}

async function until(check: () => boolean): Promise<void> {
  const end = Date.now() + 5000;
  while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

describe('the span thread, seen from the request thread', () => {
  const dir = mkdtempSync(join(tmpdir(), 'strangler-spans-'));
  const file = join(dir, 'stand-in.js');
  writeFileSync(file, STAND_IN);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('counts what a dead thread held as failed, and starts a new one for the next spans', async () => {
    const tracer = new RecordingTracer(config, threadSink(config, file));
    oneRequest(tracer, 1);
    await until(() => tracer.counts().exported === 2);
    expect(tracer.counts()).toEqual({ exported: 2, queueFull: 0, exportFailed: 0 });
    oneRequest(tracer, 2, 'die');
    await until(() => tracer.counts().exportFailed === 2);
    expect(tracer.counts()).toEqual({ exported: 2, queueFull: 0, exportFailed: 2 });
    oneRequest(tracer, 3);
    await until(() => tracer.counts().exported === 4);
    expect(tracer.counts()).toEqual({ exported: 4, queueFull: 0, exportFailed: 2 });
    await tracer.shutdown();
    // Spans recorded after shutdown are not taken.
    oneRequest(tracer, 4);
    expect(tracer.counts()).toEqual({ exported: 4, queueFull: 0, exportFailed: 2 });
  });

  it('waits for the thread to flush at shutdown, bounded by the export timeout', async () => {
    // A thread that never answers 'flush': shutdown still returns, after the timeout and a second.
    const silent = join(dir, 'silent.js');
    writeFileSync(silent, `require('node:worker_threads').parentPort.on('message', () => {});`);
    const tracer = new RecordingTracer(config, threadSink(config, silent));
    oneRequest(tracer, 1);
    const started = performance.now();
    await tracer.shutdown();
    const took = performance.now() - started;
    expect(took).toBeGreaterThanOrEqual(1900);
    expect(took).toBeLessThan(4000);
    // The 2 spans it held and never counted are lost with it.
    expect(tracer.counts()).toEqual({ exported: 0, queueFull: 0, exportFailed: 2 });
  });
});
