import type { DestinationStream } from 'pino';
import type { RequestState } from '../core/state';

/** What one access line says besides the request's state. */
export interface AccessFacts {
  status: number;
  durationMs: number;
  /** Bytes written to the client for this response (head and body). */
  bytes: number;
  /** The client went away before the response was complete. */
  aborted: boolean;
  client: string | undefined;
}

/** Characters a JSON string cannot hold as they are: quote, backslash, control characters, lone surrogates. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

function str(v: string): string {
  return NEEDS_ESCAPE.test(v) ? JSON.stringify(v) : `"${v}"`;
}

function opt(name: string, v: string | undefined): string {
  return v === undefined ? '' : `,"${name}":${str(v)}`;
}

/**
 * The access log: one JSON line per request, in pino's format (`level`, `time`,
 * `pid`, then the fields, then `msg`), written to a pino destination. It is the
 * only log line written for every request, so it has its own serializer: the
 * fields are a fixed allow-list (no headers, no query string, never a
 * credential), formatted straight into the line without building an object,
 * which costs a fraction of pino's generic path. Operational logs stay on pino.
 */
export class AccessLog {
  private readonly head: string;

  constructor(
    private readonly out: DestinationStream,
    kind: string | undefined,
  ) {
    this.head = `,"pid":${process.pid}${kind === undefined ? '' : `,"kind":${str(kind)}`},"reqId":`;
  }

  request(s: RequestState, f: AccessFacts): void {
    this.out.write(
      `{"level":30,"time":${Date.now()}${this.head}${str(s.id)},"method":${str(s.method)},"path":${str(s.path)}` +
        `${opt('route', s.route)}${opt('upstream', s.upstream)},"status":${f.status},"durationMs":${Math.round(f.durationMs * 100) / 100}` +
        `,"bytes":${f.bytes},"aborted":${f.aborted}${opt('error', s.errorCode)}${opt('user', s.userId)}${opt('auth', s.authFailure)}` +
        `${opt('canary', s.canarySide)}${opt('canaryReason', s.canaryReason)}${s.fellBack ? ',"fallback":true' : ''}${opt('client', f.client)},"msg":"request"}\n`,
    );
  }
}
