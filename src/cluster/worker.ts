import type { Gateway } from '../server';
import { WORKER_ENV, type FromWorker, type Question, type ToWorker } from './protocol';

/**
 * A worker of server.workers: serves traffic with the table its primary
 * sends, answers the primary's admin questions, and drains on `stop`,
 * SIGTERM, or when the primary goes away.
 */
export function runWorker(): void {
  let gw: Gateway | undefined;
  let starting: Promise<unknown> | undefined;
  let stopping = false;
  const send = (m: FromWorker): void => {
    if (process.connected) process.send!(m);
  };
  const stop = (reason: string): void => {
    if (stopping) return;
    stopping = true;
    if (gw === undefined) process.exit(0);
    gw.log.info({ reason }, 'worker stopping');
    gw.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };

  process.on('message', (m: ToWorker) => {
    if (m.t === 'table') {
      if (gw === undefined && starting === undefined) {
        starting = start(m);
        return;
      }
      void apply(m);
      return;
    }
    if (m.t === 'ask') {
      void answer(m.id, m.q);
      return;
    }
    if (m.t === 'stop') return stop('asked by the primary');
    gw?.peerMessage(m);
  });

  async function start(m: Extract<ToWorker, { t: 'table' }>): Promise<void> {
    const { Gateway } = await import('../server');
    const format = process.env.STRANGLER_LOG_FORMAT;
    try {
      gw = await Gateway.start({ configPath: m.table.source, port: m.port, host: m.host, env: process.env, logFormat: format === 'pretty' || format === 'json' ? format : undefined, worker: { table: m.table, send } });
    } catch (err) {
      process.stderr.write(`worker ${process.env[WORKER_ENV]}: ${(err as Error).message}\n`);
      process.exit(1);
    }
    send({ t: 'ready', version: gw.table.version, port: gw.port });
  }

  async function apply(m: Extract<ToWorker, { t: 'table' }>): Promise<void> {
    await starting;
    if (gw === undefined) return;
    try {
      const applied = await gw.apply(m.table);
      send({ t: 'applied', id: m.id, version: gw.table.version, ...(applied ? {} : { error: 'draining' }) });
    } catch (err) {
      send({ t: 'applied', id: m.id, version: gw.table.version, error: (err as Error).message });
    }
  }

  async function answer(id: number, q: Question): Promise<void> {
    await starting;
    if (gw === undefined) return send({ t: 'answer', id, error: 'not started' });
    try {
      send({ t: 'answer', id, value: await ask(gw, q) });
    } catch (err) {
      send({ t: 'answer', id, error: (err as Error).message });
    }
  }

  send({ t: 'hello' });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // A terminal's hang-up reaches the whole process group: reloading is the primary's job, and a worker must not die of it.
  process.on('SIGHUP', () => undefined);
  // The primary is gone: nobody will restart or reload this worker.
  process.on('disconnect', () => stop('the primary went away'));
  process.on('uncaughtException', (err) => gw?.log.error({ err }, 'uncaught exception (process kept alive)'));
  process.on('unhandledRejection', (err) => gw?.log.error({ err }, 'unhandled rejection'));
}

function ask(gw: Gateway, q: Question): unknown {
  if (typeof q === 'string') {
    switch (q) {
      case 'upstreams':
        return gw.upstreamStates();
      case 'breakerHistory':
        return gw.breakerHistory();
      case 'canaries':
        return gw.canaryStates();
      case 'shadows':
        return gw.shadowStates();
      case 'metrics':
        return gw.metrics?.registry.getMetricsAsJSON();
      case 'sharedStatus':
        return gw.sharedStatus();
      case 'migrationSnapshot':
        return gw.migrationSnapshot();
    }
  }
  switch (q.kind) {
    case 'migrationReport':
      return gw.migrationReport(q.others as never);
    case 'inventory':
      return gw.inventory(q.others as never);
    case 'shadowSamples':
      return gw.shadowSamples(q.route);
    case 'resetCanary':
      return gw.resetCanary(q.route);
    case 'resetShadow':
      return gw.resetShadow(q.route);
  }
}
