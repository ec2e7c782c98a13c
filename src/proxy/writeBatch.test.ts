import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { later } from './writeBatch';

const nextIteration = () => new Promise<void>((r) => setImmediate(r));

describe('write batch', () => {
  test('entries run after the current callback, once per loop iteration, in the order queued', async () => {
    const order: string[] = [];
    later((t) => order.push(t), 'a');
    later((t) => order.push(t), 'b');
    order.push('sync');
    expect(order).toEqual(['sync']);
    await nextIteration();
    expect(order).toEqual(['sync', 'a', 'b']);
  });

  test('an entry queued by a flush runs in the same pass', async () => {
    const order: string[] = [];
    later(() => {
      order.push('first');
      later((t) => order.push(t), 'queued by first');
    }, undefined);
    await nextIteration();
    expect(order).toEqual(['first', 'queued by first']);
  });

  test('a failing entry does not strand the others; its error surfaces once they ran', () => {
    // In a child process: the error must reach the process's uncaughtException handler, as any other would.
    const script = `
      const { later } = require(${JSON.stringify(join(__dirname, '..', '..', 'dist', 'src', 'proxy', 'writeBatch.js'))});
      process.on('uncaughtException', (e) => console.log('uncaught:' + e.message));
      later(() => { throw new Error('boom'); }, undefined);
      later((t) => console.log('ran:' + t), 'after');
      setImmediate(() => setImmediate(() => console.log('alive')));
    `;
    const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    expect(out.trim().split('\n')).toEqual(['ran:after', 'uncaught:boom', 'alive']);
  });
});
