import { Gateway } from '../server';

interface Running {
  readonly log: { info(o: object, msg: string): void; error(o: object, msg: string): void };
  stop(): Promise<void>;
  reload(trigger: 'SIGHUP'): Promise<unknown>;
}

/**
 * `strangler start`: the process lifecycle around a Gateway, or around the
 * primary of server.workers. SIGTERM/SIGINT drain and exit 0; SIGHUP
 * reloads; an exception in one request never takes the process down.
 */
export async function runGateway(configPath: string): Promise<Running> {
  const port = process.env.PORT ? Number(process.env.PORT) : undefined;
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
    throw new Error(`PORT="${process.env.PORT}" is not a port number`);
  }
  const format = process.env.STRANGLER_LOG_FORMAT;
  if (format !== undefined && format !== 'json' && format !== 'pretty') throw new Error(`STRANGLER_LOG_FORMAT="${format}" must be json or pretty`);
  const loaded = await Gateway.load({ configPath, env: process.env });
  let running: Running;
  const { workerCount } = await import('../cluster/primary');
  const workers = workerCount(loaded.table.config.server.workers);
  if (workers > 1) {
    const { Primary } = await import('../cluster/primary');
    running = await Primary.start({ configPath, port, logFormat: format }, loaded, workers);
  } else {
    running = await Gateway.start({ configPath, port, env: process.env, logFormat: format, loaded });
  }
  let signalled = false;
  const shutdown = (signal: string) => {
    if (signalled) return;
    signalled = true;
    running.log.info({ signal }, 'shutting down');
    running.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        running.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => void running.reload('SIGHUP'));
  process.on('uncaughtException', (err) => running.log.error({ err }, 'uncaught exception (process kept alive)'));
  process.on('unhandledRejection', (err) => running.log.error({ err }, 'unhandled rejection'));
  return running;
}
