import { randomBytes } from 'node:crypto';

/** A client-sent id is kept when it is printable ASCII without spaces, at most 128 characters. */
const SANE_ID = /^[\x21-\x7e]{1,128}$/;

// Random bytes are drawn 4 KiB at a time: one request costs a hex encode and a few slices.
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let poolOffset = POOL_BYTES;
/** The last id made here and its 32 hex digits, so its traceparent needs no parsing. */
let lastId = '';
let lastHex = '';

/** The offset of 16 fresh random bytes in the pool. */
function draw16(): number {
  if (poolOffset + 16 > pool.length) {
    pool = randomBytes(POOL_BYTES);
    poolOffset = 0;
  }
  const o = poolOffset;
  poolOffset += 16;
  return o;
}

/** A random (version 4) UUID. */
export function newRequestId(): string {
  const o = draw16();
  pool[o + 6] = (pool[o + 6]! & 0x0f) | 0x40;
  pool[o + 8] = (pool[o + 8]! & 0x3f) | 0x80;
  const hex = pool.toString('hex', o, o + 16);
  lastHex = hex;
  lastId = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  return lastId;
}

/** A random trace id (32 hex digits), for a trace the gateway starts beside a request's (a shadow copy's). */
export function newTraceId(): string {
  const o = draw16();
  return pool.toString('hex', o, o + 16);
}

export function requestIdFrom(header: string | string[] | undefined): string {
  if (typeof header === 'string' && SANE_ID.test(header)) return header;
  return newRequestId();
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_SPAN = '0000000000000000';

/** W3C Trace Context: version ff and all-zero ids are invalid. */
export function isValidTraceparent(value: string | string[] | undefined): value is string {
  if (typeof value !== 'string') return false;
  const m = TRACEPARENT.exec(value);
  return m !== null && m[1] !== 'ff' && m[2] !== ZERO_TRACE && m[3] !== ZERO_SPAN;
}

const HEX32 = /^[0-9a-f]{32}$/;

/** A UUID's 32 hex digits (slices are cheaper than a global regex replace). */
function uuidHex(u: string): string {
  return u.slice(0, 8) + u.slice(9, 13) + u.slice(14, 18) + u.slice(19, 23) + u.slice(24);
}

// Span ids: a random per-process prefix plus a counter is unique without a
// random draw per request.
const spanPrefix = randomBytes(4).toString('hex');
let spanCounter = 0;

/** A span id unique in this process (16 hex digits), without a random draw. */
export function newSpanId(): string {
  spanCounter = (spanCounter + 1) >>> 0;
  return spanPrefix + spanCounter.toString(16).padStart(8, '0');
}

/** The same trace, a span of its own: for a request the gateway sends besides the client's (a shadow copy). */
export function childTraceparent(parent: string): string {
  return `${parent.slice(0, 36)}${newSpanId()}${parent.slice(52)}`;
}

/**
 * A new traceparent for a request that arrived without a valid one. When the
 * request id is a UUID its hex digits are the trace id, so logs keyed by request
 * id and traces keyed by trace id line up.
 */
export function newTraceparent(requestId: string): string {
  return `00-${traceIdFor(requestId)}-${newSpanId()}-01`;
}

/** The trace id of a new trace for this request: its request id's hex digits when it is a UUID, else a fresh one. */
export function traceIdFor(requestId: string): string {
  // The id this module just made: its hex digits are known, no parsing.
  if (requestId === lastId && lastHex !== '') return lastHex;
  const traceId = requestId.length === 36 ? uuidHex(requestId) : '';
  if (HEX32.test(traceId) && traceId !== ZERO_TRACE) return traceId;
  newRequestId();
  return lastHex;
}
