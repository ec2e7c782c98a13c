import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { closedPort } from './servers';

/**
 * A real redis-server for one test file, on a free loopback port, with no
 * persistence; `stop()` ends it (and `start()` again brings it back on the
 * same port, for outage tests).
 */
export class TestRedis {
  private child: ChildProcess | undefined;
  port = 0;

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.port === 0) this.port = await closedPort();
    const bin = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';
    this.child = spawn(bin, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: 'ignore' });
    const deadline = Date.now() + 5000;
    while (!(await this.answers())) {
      if (Date.now() > deadline) throw new Error(`redis-server did not start on ${this.port} (is it installed? .ci/run installs it)`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private answers(): Promise<boolean> {
    return new Promise((resolve) => {
      const s = connect(this.port, '127.0.0.1', () => s.write('PING\r\n'));
      s.once('data', (d) => {
        resolve(d.toString().startsWith('+PONG'));
        s.destroy();
      });
      s.once('error', () => resolve(false));
    });
  }

  /** One inline command's raw reply (INFO, CONFIG…), read until the server pauses. */
  command(line: string): Promise<string> {
    return new Promise((resolve, reject) => {
      let got = '';
      const s = connect(this.port, '127.0.0.1', () => s.write(`${line}\r\n`));
      s.on('data', (d) => {
        got += d.toString();
        // A bulk reply ($len\r\n…\r\n) is whole once its length is in.
        const m = /^\$(\d+)\r\n/.exec(got);
        if (m && Buffer.byteLength(got) >= m[0].length + Number(m[1]) + 2) {
          s.destroy();
          resolve(got);
        }
      });
      s.on('error', reject);
    });
  }

  /** How many times Redis ran a command since start (INFO commandstats). */
  async calls(command: string): Promise<number> {
    const info = await this.command('INFO commandstats');
    return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (c === undefined || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
    this.child = undefined;
  }
}
