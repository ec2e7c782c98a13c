import { exampleBackend } from './backend';

/** The legacy monolith of the demo: it still answers everything not moved out. */
const port = Number(process.env.PORT ?? 3000);
exampleBackend('monolith', (_m, path) => ({ note: `the legacy monolith still serves ${path}` })).listen(port, '127.0.0.1', () => {
  process.stdout.write(`monolith listening on http://127.0.0.1:${port}\n`);
});
