import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { LogSchema } from '../config/schema';
import { createLoggers, LineBatch } from './logger';

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _e: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

describe('loggers', () => {
  test('json format writes one JSON object per line', () => {
    const sink = new Sink();
    const { root } = createLoggers(LogSchema.parse({ format: 'json' }), { main: sink });
    root.info({ reqId: 'r1' }, 'hello');
    expect(JSON.parse(sink.text.trim())).toMatchObject({ reqId: 'r1', msg: 'hello', level: 30 });
  });

  test('pretty format is human-readable text through pino-pretty', async () => {
    const sink = new Sink();
    const { root } = createLoggers(LogSchema.parse({ format: 'pretty' }), { main: sink });
    root.info({ reqId: 'r2' }, 'hello pretty');
    await new Promise((r) => setTimeout(r, 50));
    expect(sink.text).toMatch(/INFO.*hello pretty/);
    expect(sink.text).toContain('reqId: "r2"');
    expect(() => JSON.parse(sink.text.trim())).toThrow();
  });

  test('header-like fields that slip into a log call are censored', () => {
    const sink = new Sink();
    const { root } = createLoggers(LogSchema.parse({ format: 'json' }), { main: sink });
    root.warn({ req: { headers: { authorization: 'Bearer s3cr3t', cookie: 'sid=abc' } } }, 'oops');
    expect(sink.text).not.toContain('s3cr3t');
    expect(sink.text).not.toContain('sid=abc');
  });

  test('access log can be turned off', () => {
    expect(createLoggers(LogSchema.parse({ access: 'off', format: 'json' }), { main: new Sink() }).access).toBeNull();
  });
});

describe('line batch', () => {
  const dir = mkdtempSync(join(tmpdir(), 'strangler-batch-'));

  test('batches reach the file whole and in order, several queued at once', async () => {
    const file = join(dir, 'order.log');
    const fd = openSync(file, 'a');
    // 256-byte batches: 2,000 lines make hundreds of writes, several queued at once.
    const batch = new LineBatch(fd, 256);
    try {
      for (let i = 0; i < 2000; i++) batch.write(`{"n":${i},"pad":"${'x'.repeat(i % 50)}"}\n`);
      await batch.settled();
      const lines = readFileSync(file, 'utf8').trim().split('\n');
      expect(lines.map((l) => (JSON.parse(l) as { n: number }).n)).toEqual(Array.from({ length: 2000 }, (_, i) => i));
    } finally {
      batch.close();
      closeSync(fd);
    }
  });

  test('close writes what is still pending, and later lines as they come', () => {
    const file = join(dir, 'close.log');
    const fd = openSync(file, 'a');
    const batch = new LineBatch(fd);
    batch.write('one\n');
    batch.close();
    batch.write('two\n');
    expect(readFileSync(file, 'utf8')).toBe('one\ntwo\n');
    closeSync(fd);
  });

  test('a descriptor that cannot be written loses those lines, says so once, and does not throw', async () => {
    const file = join(dir, 'ro.log');
    writeFileSync(file, '');
    const fd = openSync(file, 'r');
    const said: string[] = [];
    const spy = jest.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (said.push(String(s)), true));
    const batch = new LineBatch(fd, 64);
    try {
      for (let i = 0; i < 20; i++) batch.write(`line ${i} of a read-only file\n`);
      await batch.settled();
    } finally {
      spy.mockRestore();
      batch.close();
      closeSync(fd);
    }
    expect(said.filter((s) => s.includes('cannot write a log batch'))).toHaveLength(1);
    expect(readFileSync(file, 'utf8')).toBe('');
  });
});
