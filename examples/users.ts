import { exampleBackend } from './backend';

/** The new users service of the demo: it sees /users/... (the gateway stripped /api). */
const port = Number(process.env.PORT ?? 4001);
const people: Record<string, string> = { '1': 'Ada Lovelace', '7': 'Grace Hopper' };
exampleBackend('users', (_m, path) => {
  const id = /^\/users\/(\w+)/.exec(path)?.[1];
  return id ? { user: people[id] ? { id, name: people[id] } : null } : { users: Object.entries(people).map(([id, name]) => ({ id, name })) };
}).listen(port, '127.0.0.1', () => {
  process.stdout.write(`users service listening on http://127.0.0.1:${port}\n`);
});
