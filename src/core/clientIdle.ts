import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

const kSweeper = Symbol('strangler.idleSweeper');
const kSeenBytes = Symbol('strangler.seenBytes');
const kActiveAt = Symbol('strangler.activeAt');

type Tracked = Socket & { [kSweeper]?: ClientIdleSweeper; [kSeenBytes]?: number; [kActiveAt]?: number };

function onClose(this: Tracked): void {
  this[kSweeper]?.untrack(this);
}

/**
 * Closes client keep-alive connections that have been idle for `limitMs`
 * (`server.keepAliveTimeoutMs`), in place of Node's own keep-alive timeout.
 * Node arms the socket's timer when a response finishes and disarms it when
 * the next request arrives: two timer-list operations on every request. Here
 * nothing is done per request: a sweep, every quarter of the limit (at most
 * 1 s), notes each connection's `bytesRead`; a connection with no request in
 * progress whose count has not moved for `limitMs` is closed. It is never
 * closed early, and at most one sweep late.
 */
export class ClientIdleSweeper {
  private readonly sockets = new Set<Tracked>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly limitMs: number,
    /** Whether a request is in progress on the connection (read, proxied or being answered). */
    private readonly busy: (socket: Socket) => boolean,
  ) {
    this.timer = setInterval(() => this.sweep(), Math.max(25, Math.min(1000, Math.floor(limitMs / 4))));
    this.timer.unref();
  }

  /** Once per connection. */
  track(socket: Socket): void {
    const s = socket as Tracked;
    s[kSweeper] = this;
    s[kSeenBytes] = s.bytesRead;
    // Monotonic: a wall-clock step must not close connections early.
    s[kActiveAt] = performance.now();
    this.sockets.add(s);
    s.once('close', onClose);
  }

  /** The connection is no longer an HTTP keep-alive connection (closed, or upgraded to a WebSocket). */
  untrack(socket: Socket): void {
    this.sockets.delete(socket as Tracked);
  }

  get size(): number {
    return this.sockets.size;
  }

  private sweep(): void {
    const now = performance.now();
    for (const s of this.sockets) {
      const read = s.bytesRead;
      if (read !== s[kSeenBytes] || this.busy(s)) {
        // Active since the last sweep: its idle time counts from now (so it is never over-counted).
        s[kSeenBytes] = read;
        s[kActiveAt] = now;
      } else if (now - s[kActiveAt]! >= this.limitMs) {
        this.sockets.delete(s);
        s.destroy();
      }
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.sockets.clear();
  }
}
