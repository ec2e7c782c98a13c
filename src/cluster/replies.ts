/**
 * Answers awaited over the IPC channel, matched by id: a message goes out
 * with a fresh id, its answer comes back with it. An answer that does not
 * come in time, or whose sender goes away, is `undefined`: callers decide
 * without it.
 */
export class Replies<T, Tag = undefined> {
  private nextId = 1;
  private readonly waiting = new Map<number, { tag: Tag; resolve: (value: T | undefined) => void }>();

  /** Sends with a fresh id (`send(id)`) and waits for `answer(id, …)`, at most `timeoutMs`. */
  ask(send: (id: number) => void, timeoutMs: number, tag: Tag): Promise<T | undefined> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve(undefined);
      }, timeoutMs);
      this.waiting.set(id, {
        tag,
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
      });
      send(id);
    });
  }

  answer(id: number, value: T): void {
    const w = this.waiting.get(id);
    if (w === undefined) return;
    this.waiting.delete(id);
    w.resolve(value);
  }

  /** Gives up waiting on every question asked with a matching tag (all, without `match`). */
  drop(match: (tag: Tag) => boolean = () => true): void {
    for (const [id, w] of this.waiting) {
      if (!match(w.tag)) continue;
      this.waiting.delete(id);
      w.resolve(undefined);
    }
  }
}
