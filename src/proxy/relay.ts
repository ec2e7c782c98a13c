import type { IncomingMessage, ServerResponse } from 'node:http';
import { later } from './writeBatch';

const kRelay = Symbol('strangler.relay');

export interface RelayTap {
  chunk(chunk: Buffer): void;
  end(): void;
  failed(): void;
}
type RelaySource = IncomingMessage & { [kRelay]?: Relay };
type RelaySink = ServerResponse & { [kRelay]?: Relay };

/**
 * One response on its way from the upstream to the client. Body chunks and the
 * end are held until the loop iteration's write batch (see writeBatch.ts), so
 * a small response leaves as one write with its head. At most one read's worth
 * of data per iteration is held; a client that reads slowly pauses the upstream
 * (backpressure), so memory stays bounded.
 */
class Relay {
  /** The first held chunk, and any more (rare: a response arriving in several reads in one iteration). */
  chunk: Buffer | undefined = undefined;
  more: Buffer[] | undefined = undefined;
  ended = false;
  queued = false;

  constructor(
    readonly source: IncomingMessage,
    readonly sink: ServerResponse,
    /** A parallel run's copy, told about the body as it passes (undefined on routes without one). */
    readonly tap: RelayTap | undefined,
  ) {}

  hold(chunk: Buffer | undefined): void {
    if (chunk !== undefined) {
      if (this.chunk === undefined) this.chunk = chunk;
      else (this.more ??= []).push(chunk);
    }
    if (!this.queued) {
      this.queued = true;
      later(flushRelay, this);
    }
  }
}

/**
 * Streams the upstream's response body to the client, with backpressure: the
 * upstream is paused while the client's socket is full. Leaner than
 * `Readable.pipe` (plain listeners, no per-request closures); an upstream body
 * cut short destroys the client's response, so the client sees a truncated
 * response, never a hang.
 */
export function relay(source: IncomingMessage, sink: ServerResponse, tap?: RelayTap): void {
  const r = new Relay(source, sink, tap);
  (source as RelaySource)[kRelay] = r;
  source.on('data', relayData);
  source.on('end', relayEnd);
  source.on('close', relayClose);
  // The head goes out in this iteration's batch even when no body byte has come yet (an SSE stream
  // whose first event comes later): with the body when it arrived with the head, alone otherwise.
  later(flushHead, r);
}

function flushHead(r: Relay): void {
  const sink = r.sink;
  // (`headersSent` is true as soon as writeHead has run, sent or not: only the relay itself writes to the sink.)
  if (r.queued || r.ended || r.chunk !== undefined || sink.destroyed) return;
  sink.flushHeaders();
}

function relayData(this: RelaySource, chunk: Buffer): void {
  const r = this[kRelay]!;
  if (r.tap !== undefined) r.tap.chunk(chunk);
  r.hold(chunk);
}

function relayEnd(this: RelaySource): void {
  const r = this[kRelay]!;
  r.ended = true;
  if (r.tap !== undefined) r.tap.end();
  r.hold(undefined);
}

function relayClose(this: RelaySource): void {
  if (this.complete) return;
  const r = this[kRelay]!;
  if (r.tap !== undefined) r.tap.failed();
  r.sink.destroy();
}

function flushRelay(r: Relay): void {
  r.queued = false;
  const { sink, chunk, more } = r;
  r.chunk = r.more = undefined;
  // The client left (or the upstream body was cut short): nothing more to send.
  if (sink.destroyed) return;
  if (r.ended && r.source.rawTrailers.length > 0) addTrailers(r);
  if (r.ended && more === undefined) {
    // The common case: the whole body arrived in one read; head, body and end leave in one write.
    if (chunk === undefined) sink.end();
    else sink.end(chunk);
    return;
  }
  let room = chunk === undefined || sink.write(chunk);
  if (more !== undefined) for (const c of more) room = sink.write(c) && room;
  if (r.ended) sink.end();
  else if (!room) {
    r.source.pause();
    (sink as RelaySink)[kRelay] = r;
    sink.once('drain', relayDrain);
  }
}

/** The upstream's trailer fields, for a client that asked for them (`TE: trailers`, passed on by the gateway). */
function addTrailers(r: Relay): void {
  const sink = r.sink;
  if (sink.req.headers.te !== 'trailers' || sink.hasHeader('content-length')) return;
  const raw = r.source.rawTrailers;
  const pairs: [string, string][] = [];
  for (let i = 0; i < raw.length; i += 2) pairs.push([raw[i]!, raw[i + 1]!]);
  sink.addTrailers(pairs);
}

function relayDrain(this: RelaySink): void {
  this[kRelay]!.source.resume();
}
