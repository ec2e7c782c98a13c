import { createServer, type Server } from 'node:http';

/**
 * A tiny example backend for the demo: it answers every request with JSON that
 * says which service answered and what it was sent, so you can see the route
 * table at work. Not part of the gateway.
 */
export function exampleBackend(service: string, describe: (method: string, path: string) => Record<string, unknown>): Server {
  return createServer((req, res) => {
    let size = 0;
    req.on('data', (chunk: Buffer) => (size += chunk.length));
    req.on('end', () => {
      const body = JSON.stringify(
        {
          service,
          method: req.method,
          path: req.url,
          requestId: req.headers['x-request-id'] ?? null,
          forwardedFor: req.headers['x-forwarded-for'] ?? null,
          bodyBytes: size,
          ...describe(req.method ?? 'GET', req.url ?? '/'),
        },
        null,
        2,
      );
      res.writeHead(200, { 'content-type': 'application/json', 'x-served-by': service });
      res.end(body + '\n');
    });
  });
}
