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
  /** The request came over HTTP/2 (absent: HTTP/1.1). */
  http2?: boolean;
}

/** Characters a JSON string cannot hold as they are: quote, backslash, control characters, lone surrogates. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

function str(v: string): string {
  return NEEDS_ESCAPE.test(v) ? JSON.stringify(v) : `"${v}"`;
}

function opt(name: string, v: string | undefined): string {
  return v === undefined ? '' : `,"${name}":${str(v)}`;
}

/** For values the gateway itself chose (route and upstream names, codes, sides, IPs): never anything to escape. */
function safe(name: string, v: string | undefined): string {
  return v === undefined ? '' : `,"${name}":"${v}"`;
}

/** Milliseconds with two decimals, formatted from integers (a double's shortest form costs more). */
function millis(ms: number): string {
  const hundredths = Math.round(ms * 100);
  const whole = Math.floor(hundredths / 100);
  const frac = hundredths - whole * 100;
  return frac === 0 ? `${whole}` : frac < 10 ? `${whole}.0${frac}` : `${whole}.${frac}`;
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
    // Only the request id (a client's may be kept), the path and the user id can hold characters to escape;
    // route and upstream names are validated as names, the method is a token, the rest are the gateway's own codes.
    this.out.write(
      `{"level":30,"time":${Date.now()}${this.head}${str(s.id)},"method":"${s.method}","path":${str(s.path)}` +
        `${safe('route', s.route)}${safe('upstream', s.upstream)},"status":${f.status},"durationMs":${millis(f.durationMs)}` +
        `,"bytes":${f.bytes},"aborted":${f.aborted}${safe('error', s.errorCode)}${opt('user', s.userId)}${safe('auth', s.authFailure)}` +
        `${safe('canary', s.canarySide)}${safe('canaryReason', s.canaryReason)}${s.fellBack ? ',"fallback":true' : ''}` +
        `${s.shadow !== undefined ? safe('shadow', s.shadow.outcome()) : s.shadowSkipped ? ',"shadow":"skipped"' : ''}${f.http2 === true ? ',"protocol":"h2"' : ''}${safe('client', f.client)}${safe('trace', s.traceId)},"msg":"request"}\n`,
    );
  }
}
