import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorCode } from './errors';
import type { RequestTrace } from '../observability/tracing';

/**
 * What the gateway knows about one request, created once when it arrives and
 * attached to the request object. A class (not an object literal) so every
 * request's state has the same shape: V8 keeps property access monomorphic.
 */
export class RequestState {
  /** Normalised path (without query), or the raw path while not yet normalised. */
  path: string;
  /** The path routing used: `path` without `;parameters`. */
  matchPath = '';
  route: string | undefined = undefined;
  upstream: string | undefined = undefined;
  upstreamPath: string | undefined = undefined;
  /** The gateway's own error code when it answered by itself. */
  errorCode: ErrorCode | undefined = undefined;
  proxyReq: ClientRequest | undefined = undefined;
  proxyRes: IncomingMessage | undefined = undefined;
  timedOut = false;
  /** Set once the gateway has answered (or given up): late upstream events are ignored. */
  settled = false;
  upgraded = false;
  /** Its close was handled (metrics, access log, counters): exactly once. */
  finished = false;
  /** The request's dispatch (retries, fallback), told when the response closes. */
  exchange: { closed(aborted: boolean): void; upstreamClosed(proxyReq: ClientRequest): void } | undefined = undefined;
  /** Verified user id, when the route authenticated one (for logs and canary stickiness). */
  userId: string | undefined = undefined;
  /** Why authentication failed, as a reason code (never the credential). */
  authFailure: string | undefined = undefined;
  /** Canary routes: the side chosen, why, and the state to report the outcome to. */
  canarySide: 'primary' | 'canary' | undefined = undefined;
  canaryReason: string | undefined = undefined;
  canary: { record(side: 'primary' | 'canary', failed: boolean, ms: number): void } | undefined = undefined;
  /** The request was served by a fallback upstream. */
  fellBack = false;
  /** The parallel run's copy of this request, told about the primary's answer as it is relayed. */
  shadow: { outcome(): string; head(status: number, headers: import('node:http').IncomingHttpHeaders): void; chunk(chunk: Buffer): void; end(): void; failed(): void } | undefined = undefined;
  /** Set when a route with a shadow did not copy this request. */
  shadowSkipped = false;
  /** What the route's path template and conditions captured (null: nothing). */
  params: Map<string, string> | null = null;
  /** The route's path as written in the table (`/api/orders/{id}`): a trace's http.route, never the raw path. */
  routePath: string | undefined = undefined;
  /** With tracing: the request's trace id (in the access log line), and its trace when it is recorded. */
  traceId: string | undefined = undefined;
  trace: RequestTrace | undefined = undefined;
  /** Extra headers for the proxied response (a canary's Set-Cookie). */
  extraResponseHeaders: string[] | undefined = undefined;
  constructor(
    readonly id: string,
    readonly startedAt: number,
    readonly method: string,
    path: string,
    readonly res: ServerResponse | undefined,
    readonly socketBytesAtStart: number,
  ) {
    this.path = path;
  }
}

const kState = Symbol('strangler.requestState');

type WithState = { [kState]?: RequestState };

export function attachState(req: IncomingMessage, state: RequestState): void {
  (req as IncomingMessage & WithState)[kState] = state;
}

export function stateOf(req: IncomingMessage): RequestState | undefined {
  return (req as IncomingMessage & WithState)[kState];
}
