import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

/**
 * `npm run demo`: starts the example monolith (:3000), the example users
 * service (:4001), the orders service the tour migrates to (:4002) and the
 * gateway (:8080, admin API :9901) with the repository's routes.yaml.
 * Ctrl-C stops them all.
 */
const root = join(__dirname, '..', '..');
const children: ChildProcess[] = [];

function run(name: string, script: string, args: string[] = [], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, [script, ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = `[${name}] `;
  const relay = (chunk: Buffer) => process.stdout.write(chunk.toString().replace(/^(?=.)/gm, prefix));
  child.stdout!.on('data', relay);
  child.stderr!.on('data', relay);
  child.on('exit', (code) => {
    if (!stopping) {
      process.stdout.write(`${prefix}exited with ${code}; stopping the demo\n`);
      stop();
    }
  });
  children.push(child);
  return child;
}

let stopping = false;
function stop(): void {
  stopping = true;
  for (const c of children) c.kill('SIGTERM');
  setTimeout(() => process.exit(0), 500).unref();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

run('monolith', join(__dirname, 'monolith.js'), [], { PORT: '3000' });
run('users', join(__dirname, 'users.js'), [], { PORT: '4001' });
run('orders', join(__dirname, 'orders.js'), [], { PORT: '4002' });
run('gateway', join(root, 'dist', 'src', 'cli', 'index.js'), ['start', '--config', join(root, 'routes.yaml')], { STRANGLER_LOG_FORMAT: 'pretty' });

setTimeout(() => {
  process.stdout.write(`
Strangler demo is up. Try:

  curl -i http://127.0.0.1:8080/api/users/7        # -> users service, sees /users/7
  curl -i http://127.0.0.1:8080/api/users          # -> users service, sees /users
  curl -i -X DELETE http://127.0.0.1:8080/api/users/7   # DELETE is not moved yet -> monolith
  curl -i http://127.0.0.1:8080/orders/42          # -> monolith (not migrated)
  curl -i --path-as-is http://127.0.0.1:8080/api/users/../../admin   # normalised to /admin by the gateway -> monolith
  curl -i http://127.0.0.1:8080/healthz            # the gateway itself

Watch the migration in the console: http://127.0.0.1:9901/ui/

Explain a request without sending it:
  npx strangler explain --config routes.yaml GET /api/users/7

Then move /api/orders to the orders service (:4002), 10% of users first:
the five-minute tour in README.md.

Ctrl-C stops everything.
`);
}, 800);
