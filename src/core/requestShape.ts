import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { ErrorCode } from './errors';

/**
 * Node's `maxHeadersCount`: a request with more header lines has the rest
 * dropped from `req.headers` while the parser still frames the body with
 * them (a dropped Content-Length reaches the upstream as no body at all).
 */
export const MAX_HEADER_LINES = 2000;

/** Whether a request has a body: Transfer-Encoding, or a Content-Length other than 0 (RFC 9112 §6.3). */
export function hasRequestBody(h: IncomingHttpHeaders): boolean {
  return h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0');
}

/** RFC 9112 §3.2 / RFC 3986: reg-name or IPv4 (letters, digits, `-`, `.`, `_`, `~`) or an IPv6 literal, then an optional port. */
const HOST = /^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

/**
 * Checks the request's framing and Host before anything else runs; an error
 * code when the request must be refused, and its connection closed (what
 * follows on the connection cannot be trusted to be a request boundary).
 * RFC 9112 §6.1 and §6.3: a Transfer-Encoding whose last coding is not
 * `chunked` leaves the body length unknown (400); another coding before
 * `chunked` is not implemented (501). §3.2: one valid Host.
 */
export function malformedRequest(req: IncomingMessage): ErrorCode | undefined {
  if (req.httpVersionMajor < 1) return 'BAD_REQUEST';
  const raw = req.rawHeaders;
  if (raw.length >= MAX_HEADER_LINES * 2) return 'REQUEST_HEADERS_TOO_LARGE';
  const te = req.headers['transfer-encoding'];
  if (te !== undefined && te !== 'chunked') {
    const codings = te.toLowerCase().split(',');
    if (codings[codings.length - 1]!.trim() !== 'chunked') return 'BAD_REQUEST';
    if (codings.length > 1 || codings[0]!.trim() !== 'chunked') return 'UNSUPPORTED_TRANSFER_CODING';
  }
  const host = req.headers.host;
  if (host !== undefined) {
    // Empty is legal: a client must send it when the target has no authority (RFC 9112 §3.2).
    if (host !== '' && !HOST.test(host)) return 'BAD_REQUEST';
    // Node keeps the first Host and drops the others from req.headers: count them in the raw list.
    let hosts = 0;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      if (name.length === 4 && (name === 'Host' || name.toLowerCase() === 'host') && ++hosts > 1) return 'BAD_REQUEST';
    }
  }
  return undefined;
}
