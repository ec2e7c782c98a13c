import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { formatProblem, loadTableFile, type ConfigProblem, type LoadedTable } from './config/load';
import { createLoggers, type LogOutputs, type Logger, type Loggers } from './observability/logger';
import { createPipeline, type PipelineHost } from './pipeline';
import { activate, type ActiveTable } from './table';

export interface GatewayOptions {
  /** Route table file. */
  configPath: string;
  /** Overrides `server.port` (PORT in the environment does the same through `fromEnvironment`). */
  port?: number;
  host?: string;
  /** Environment for `${VAR}` interpolation. */
  env?: NodeJS.ProcessEnv;
  /** Overrides `log.format` (STRANGLER_LOG_FORMAT in the environment). */
  logFormat?: 'json' | 'pretty';
  /** Log destinations (tests capture logs here). */
  logOutputs?: LogOutputs;
}

export class ConfigError extends Error {
  constructor(readonly problems: ConfigProblem[]) {
    super(`invalid route table:\n${problems.map(formatProblem).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * The running gateway: builds everything from the route table, owns the
 * listening socket and the lifecycle (start, drain, stop).
 */
export class Gateway implements PipelineHost {
  table: ActiveTable;
  draining = false;
  readonly log: Logger;
  readonly accessLog: Logger | null;
  private readonly loggers: Loggers;
  private readonly server: Server;
  private inFlight = 0;
  private readonly upgraded = new Set<Duplex>();
  private drainWaiters: Array<() => void> = [];
  private stopping: Promise<void> | undefined;

  private constructor(
    loaded: LoadedTable,
    private readonly options: GatewayOptions,
  ) {
    const logConfig = options.logFormat ? { ...loaded.config.log, format: options.logFormat } : loaded.config.log;
    this.loggers = createLoggers(logConfig, options.logOutputs);
    this.log = this.loggers.root;
    this.accessLog = this.loggers.access;
    this.table = activate(loaded, this.log);
    const s = loaded.config.server;
    this.server = createServer({
      maxHeaderSize: s.maxHeaderBytes,
      keepAliveTimeout: s.keepAliveTimeoutMs,
      headersTimeout: s.headersTimeoutMs,
      requestTimeout: s.requestTimeoutMs,
      // Node's default 1000 header lines is generous; the byte limit above is what protects us.
    });
    const pipeline = createPipeline(this);
    this.server.on('request', pipeline.onRequest);
    this.server.on('upgrade', pipeline.onUpgrade);
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      // Malformed requests and oversized headers: answer like Node would, but never crash or log the raw bytes.
      if (!socket.writable) return socket.destroy();
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    });
  }

  static async start(options: GatewayOptions): Promise<Gateway> {
    const result = loadTableFile(options.configPath, options.env ?? process.env);
    if (!result.ok) throw new ConfigError(result.problems);
    const gw = new Gateway(result.table, options);
    await gw.listen();
    return gw;
  }

  private listen(): Promise<void> {
    const s = this.table.config.server;
    const port = this.options.port ?? s.port;
    const host = this.options.host ?? s.host;
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        this.log.info({ port: this.port, host, version: this.table.version, routes: this.table.config.routes.length }, 'gateway listening');
        resolve();
      });
    });
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  requestStarted(): void {
    this.inFlight++;
  }

  requestFinished(): void {
    this.inFlight--;
    if (this.inFlight === 0 && this.drainWaiters.length) {
      for (const w of this.drainWaiters.splice(0)) w();
    }
  }

  socketUpgraded(socket: Duplex): void {
    this.upgraded.add(socket);
    socket.once('close', () => this.upgraded.delete(socket));
  }

  get inFlightRequests(): number {
    return this.inFlight;
  }

  /**
   * Stops accepting, lets in-flight requests finish (bounded by the drain
   * timeout), then closes what is left. Safe to call more than once.
   */
  stop(): Promise<void> {
    this.stopping ??= this.drainAndClose();
    return this.stopping;
  }

  private async drainAndClose(): Promise<void> {
    this.draining = true;
    const timeoutMs = this.table.config.server.drainTimeoutMs;
    this.log.info({ inFlight: this.inFlight, timeoutMs }, 'draining');
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    if (this.inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      const drained = new Promise<void>((resolve) => this.drainWaiters.push(resolve));
      const expired = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      await Promise.race([drained, expired]);
      clearTimeout(timer);
      if (this.inFlight > 0) this.log.warn({ inFlight: this.inFlight }, 'drain timeout: closing remaining connections');
    }
    for (const socket of this.upgraded) socket.destroy();
    this.server.closeAllConnections();
    await closed;
    for (const pool of this.table.pools.values()) pool.close();
    this.log.info('stopped');
    this.loggers.flush();
  }
}
