import { STATUS_CODES, type ServerResponse } from 'node:http';

/**
 * The one catalogue of errors the gateway answers by itself. Codes are stable:
 * clients, dashboards and runbooks match on them, so never rename one.
 */
export const ErrorCatalogue = {
  UNAUTHORIZED: { status: 401, message: 'Sign in to use this resource' },
  FORBIDDEN: { status: 403, message: 'Your account is not allowed to use this resource' },
  AUTH_UNAVAILABLE: { status: 503, message: 'Your session cannot be checked right now' },
  ROUTE_NOT_FOUND: { status: 404, message: 'No route matches this request' },
  BAD_REQUEST: { status: 400, message: 'The request is malformed' },
  REQUEST_HEADERS_TOO_LARGE: { status: 431, message: 'The request has too many header lines' },
  BAD_PATH: { status: 400, message: 'The request path cannot be normalised safely' },
  UNSUPPORTED_TRANSFER_CODING: { status: 501, message: 'Only the chunked transfer coding is supported' },
  UPSTREAM_CONNECT_FAILED: { status: 502, message: 'The upstream service could not be reached' },
  UPSTREAM_RESET: { status: 502, message: 'The upstream service closed the connection before answering' },
  CIRCUIT_OPEN: { status: 503, message: 'The upstream service is failing; the gateway is not sending it requests for now' },
  UPSTREAM_SATURATED: { status: 503, message: 'The upstream service has too many requests in flight' },
  UPSTREAM_TIMEOUT: { status: 504, message: 'The upstream service did not answer in time' },
  UPSTREAM_ERROR: { status: 502, message: 'The upstream service failed' },
  UPSTREAM_HEADERS_TOO_LARGE: { status: 502, message: 'The upstream service answered with headers larger than the gateway accepts' },
  REQUEST_TIMEOUT: { status: 408, message: 'The request was not received in time' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'The request body is larger than this route accepts' },
  RATE_LIMITED: { status: 429, message: 'Too many requests; try again later' },
  INTERNAL: { status: 500, message: 'The gateway failed to handle the request' },
} as const;

export type ErrorCode = keyof typeof ErrorCatalogue;

export interface ErrorBody {
  error: { code: ErrorCode; message: string; requestId: string };
}

export function errorBody(code: ErrorCode, requestId: string, message?: string): string {
  const body: ErrorBody = { error: { code, message: message ?? ErrorCatalogue[code].message, requestId } };
  return JSON.stringify(body);
}

/**
 * Writes a gateway-made JSON error. When the response has already started
 * (headers sent), a status can no longer be changed: the connection is
 * destroyed so the client sees a truncated response instead of a lie.
 */
export function sendError(
  res: ServerResponse,
  code: ErrorCode,
  requestId: string,
  message?: string,
  extraHeaders?: Record<string, string>,
): void {
  if (res.headersSent || res.writableEnded) {
    res.destroy();
    return;
  }
  const body = errorBody(code, requestId, message);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-request-id': requestId,
    ...extraHeaders,
  };
  res.writeHead(ErrorCatalogue[code].status, headers);
  res.end(body);
}

/** A raw HTTP/1.1 error for sockets that were never upgraded (WebSocket handshakes). */
export function rawErrorResponse(code: ErrorCode, requestId: string, message?: string): string {
  return rawResponse(ErrorCatalogue[code].status, ['content-type', 'application/json; charset=utf-8', 'x-request-id', requestId], errorBody(code, requestId, message));
}

/** A whole HTTP/1.1 response as text, for a socket no HTTP server writes to any more (upgrades); closes the connection. */
export function rawResponse(status: number, headers: readonly string[], body: string): string {
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${head}content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}
