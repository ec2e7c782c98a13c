import { Deadlines, type Deadline } from './deadlines';

function item(log: string[], name: string): Deadline {
  return { dlPrev: null, dlNext: null, dlAt: 0, dlList: null, onDeadline: () => log.push(name) };
}

describe('deadline sweeper', () => {
  test('fires expired deadlines in order, never disarmed ones, and stops its timer when empty', async () => {
    const d = new Deadlines();
    const log: string[] = [];
    const a = item(log, 'a');
    const b = item(log, 'b');
    const c = item(log, 'c');
    const later = item(log, 'later');
    d.arm(a, 20);
    d.arm(b, 20);
    d.arm(c, 5);
    d.arm(later, 10_000);
    d.disarm(b);
    await new Promise((r) => setTimeout(r, 60));
    expect(log).toEqual(['c', 'a']);
    expect(b.dlList).toBeNull();
    d.disarm(later);
    d.arm(a, 5);
    d.disarm(a);
    await new Promise((r) => setTimeout(r, 30));
    expect(log).toEqual(['c', 'a']);
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
