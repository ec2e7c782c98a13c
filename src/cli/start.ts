import { Gateway } from '../server';

/**
 * `strangler start`: the process lifecycle around a Gateway. SIGTERM/SIGINT
 * drain and exit 0; an exception in one request never takes the process down.
 */
export async function runGateway(configPath: string): Promise<Gateway> {
  const port = process.env.PORT ? Number(process.env.PORT) : undefined;
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
    throw new Error(`PORT="${process.env.PORT}" is not a port number`);
  }
  const format = process.env.STRANGLER_LOG_FORMAT;
  if (format !== undefined && format !== 'json' && format !== 'pretty') throw new Error(`STRANGLER_LOG_FORMAT="${format}" must be json or pretty`);
  const gw = await Gateway.start({ configPath, port, env: process.env, logFormat: format });
  let signalled = false;
  const shutdown = (signal: string) => {
    if (signalled) return;
    signalled = true;
    gw.log.info({ signal }, 'shutting down');
    gw.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        gw.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => void gw.reload('SIGHUP'));
  process.on('uncaughtException', (err) => gw.log.error({ err }, 'uncaught exception (process kept alive)'));
  process.on('unhandledRejection', (err) => gw.log.error({ err }, 'unhandled rejection'));
  return gw;
}
