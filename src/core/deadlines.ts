import { performance } from 'node:perf_hooks';

/** Something with a deadline; the links are intrusive, so arming allocates nothing. */
export interface Deadline {
  dlPrev: Deadline | null;
  dlNext: Deadline | null;
  dlAt: number;
  dlList: DeadlineList | null;
  onDeadline(): void;
}

class DeadlineList {
  head: Deadline | null = null;
  tail: Deadline | null = null;
}

const TICK_MS = 10;

/**
 * Request deadlines without a timer per request. A Node Timeout per proxied
 * request (create, insert, clear) measurably costs throughput on the hot path;
 * here every deadline of the same duration goes in one FIFO list, which is
 * therefore ordered by expiry, and one 10 ms sweep fires the expired heads.
 * Arming and disarming are O(1) pointer updates. Precision: +10 ms.
 */
export class Deadlines {
  private readonly lists = new Map<number, DeadlineList>();
  private timer: NodeJS.Timeout | undefined;
  private armed = 0;

  arm(item: Deadline, ms: number): void {
    if (item.dlList !== null) this.disarm(item);
    let list = this.lists.get(ms);
    if (list === undefined) {
      list = new DeadlineList();
      this.lists.set(ms, list);
    }
    item.dlAt = performance.now() + ms;
    item.dlList = list;
    item.dlNext = null;
    item.dlPrev = list.tail;
    if (list.tail !== null) list.tail.dlNext = item;
    else list.head = item;
    list.tail = item;
    if (this.armed++ === 0 && this.timer === undefined) {
      this.timer = setInterval(() => this.sweep(), TICK_MS);
      this.timer.unref();
    }
  }

  disarm(item: Deadline): void {
    const list = item.dlList;
    if (list === null) return;
    if (item.dlPrev !== null) item.dlPrev.dlNext = item.dlNext;
    else list.head = item.dlNext;
    if (item.dlNext !== null) item.dlNext.dlPrev = item.dlPrev;
    else list.tail = item.dlPrev;
    item.dlPrev = item.dlNext = null;
    item.dlList = null;
    this.armed--;
  }

  private sweep(): void {
    const now = performance.now();
    for (const list of this.lists.values()) {
      let item = list.head;
      while (item !== null && item.dlAt <= now) {
        this.disarm(item);
        item.onDeadline();
        item = list.head;
      }
    }
    if (this.armed === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

/** The process's one deadline sweeper. */
export const deadlines = new Deadlines();
