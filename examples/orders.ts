import { exampleBackend } from './backend';

/** The demo's orders service: deployed, but the route table does not send it anything until the tour's canary step. */
const port = Number(process.env.PORT ?? 4002);
exampleBackend('orders', (_m, path) => {
  const id = /^\/orders\/(\w+)/.exec(path)?.[1];
  return id ? { order: { id, status: 'shipped' } } : { orders: [] };
}).listen(port, '127.0.0.1', () => {
  process.stdout.write(`orders service listening on http://127.0.0.1:${port}\n`);
});
