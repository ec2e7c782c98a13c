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

  async stop(): Promise<void> {
    const c = this.child;
    if (c === undefined || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
    this.child = undefined;
  }
}
