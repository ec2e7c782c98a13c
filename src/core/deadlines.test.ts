import { Deadlines, type Deadline } from './deadlines';

function item(log: string[], name: string): Deadline {
  return { dlPrev: null, dlNext: null, dlAt: 0, dlList: null, onDeadline: () => log.push(name) };
}

describe('deadline sweeper', () => {
  // Deadlines of one duration fire in the order they were armed; across durations only the
  // +10 ms precision is promised (one sweep fires every list's expired items, list by list).
  test('fires expired deadlines (FIFO within one duration), never disarmed ones, and stops its timer when empty', async () => {
    const d = new Deadlines();
    const log: string[] = [];
    const a = item(log, 'a');
    const a2 = item(log, 'a2');
    const b = item(log, 'b');
    const c = item(log, 'c');
    const later = item(log, 'later');
    d.arm(a, 20);
    d.arm(b, 20);
    d.arm(a2, 20);
    d.arm(c, 5);
    d.arm(later, 10_000);
    d.disarm(b);
    await new Promise((r) => setTimeout(r, 60));
    expect([...log].sort()).toEqual(['a', 'a2', 'c']);
    expect(log.filter((n) => n !== 'c')).toEqual(['a', 'a2']);
    expect(b.dlList).toBeNull();
    d.disarm(later);
    d.arm(a, 5);
    d.disarm(a);
    await new Promise((r) => setTimeout(r, 30));
    expect(log).toHaveLength(3);
    expect((d as unknown as { timer: unknown }).timer).toBeUndefined();
  });

  test('re-arming moves an item to its new deadline', async () => {
    const d = new Deadlines();
    const log: string[] = [];
    const a = item(log, 'a');
    d.arm(a, 5);
    d.arm(a, 10_000);
    await new Promise((r) => setTimeout(r, 40));
    expect(log).toEqual([]);
    d.disarm(a);
  });
});
