import { Writable } from 'node:stream';
import { LogSchema } from '../config/schema';
import { createLoggers } from './logger';

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
