import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { RequestState } from '../core/state';
import type { CompiledRoute, PreparedHeaderEdits } from './compile';
import { fill, fillBy } from './template';

/**
 * What a route does besides choosing an upstream: a redirect or a fixed
 * answer instead of proxying, and the header edits on the way in and out.
 * Prepared when the table loads (see compile); here only filled per request.
 */

/** Redirect or fixed answer; the gateway answers by itself, with the request id. */
export function answerByRoute(res: ServerResponse, state: RequestState, r: CompiledRoute, query: string): void {
  state.settled = true;
  const extra = r.responseHeaderEdits;
  if (r.redirect !== null) {
    let to = fill(r.redirect.target, state.params ?? new Map()) + (r.redirect.dropQuery || query === '' ? '' : query);
    // A target written as a path stays on this site: `//host` or `/\host` would be another one.
    if (r.redirect.to.startsWith('/') && /^\/[/\\]/.test(to)) to = `/${to.replace(/^[/\\]+/, '')}`;
    const headers = ['Location', to, 'Content-Length', '0', 'Cache-Control', r.redirect.status === 301 || r.redirect.status === 308 ? 'max-age=3600' : 'no-store', 'X-Request-Id', state.id];
    if (extra !== null) editResponseHeaders(headers, extra, state);
    res.writeHead(r.redirect.status, headers);
    res.end();
    return;
  }
  const respond = r.respond!;
  const body = Buffer.from(respond.body);
  const headers = ['Content-Type', respond.contentType, 'Content-Length', String(body.length), 'Cache-Control', 'no-store', 'X-Request-Id', state.id];
  if (extra !== null) editResponseHeaders(headers, extra, state);
  res.writeHead(respond.status, headers);
  res.end(state.method === 'HEAD' ? undefined : body);
}

function lookupFor(state: RequestState): (name: string) => string | undefined {
  return (name) => (name === 'requestId' ? state.id : state.params?.get(name));
}

/** Removes, then sets, request headers (names are lower-case). */
export function editRequestHeaders(headers: IncomingHttpHeaders, edits: PreparedHeaderEdits, state: RequestState): void {
  for (const name of edits.remove) delete headers[name];
  if (edits.set.length === 0) return;
  const lookup = lookupFor(state);
  for (const [name, value] of edits.set) headers[name] = fillBy(value, lookup);
}

/** The same on a response's flat [name, value, …] list (any case), before it is written. */
export function editResponseHeaders(headers: string[], edits: PreparedHeaderEdits, state: RequestState): void {
  const drop = new Set([...edits.remove, ...edits.set.map(([n]) => n)]);
  let w = 0;
  for (let i = 0; i < headers.length; i += 2) {
    if (drop.has(headers[i]!.toLowerCase())) continue;
    headers[w++] = headers[i]!;
    headers[w++] = headers[i + 1]!;
  }
  headers.length = w;
  if (edits.set.length === 0) return;
  const lookup = lookupFor(state);
  for (const [name, value] of edits.set) headers.push(name, fillBy(value, lookup));
}
