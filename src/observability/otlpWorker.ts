import { parentPort, workerData } from 'node:worker_threads';
import { otlpHttp, type ExportAnswer, type ExportMessage } from './otlpHttp';

/** The export thread (see otlpExporter): posts each batch it is given to the collector, and says how it went. */
const { url, headers, timeoutMs } = workerData as { url: string; headers: Record<string, string>; timeoutMs: number };
const http = otlpHttp(url, headers, timeoutMs);
const cancels = new Map<number, () => void>();

parentPort!.on('message', (m: ExportMessage) => {
  if ('cancel' in m) {
    cancels.get(m.cancel)?.();
    cancels.delete(m.cancel);
    return;
  }
  const cancel = http.send(Buffer.from(m.body, m.offset, m.length), (ok) => {
    cancels.delete(m.id);
    parentPort!.postMessage({ id: m.id, ok } satisfies ExportAnswer);
  });
  if (cancel) cancels.set(m.id, cancel);
});
