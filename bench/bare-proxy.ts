import { Agent, createServer } from 'node:http';
import httpProxy from 'http-proxy';

/**
 * The floor: bare http-proxy 1.18.1 with a keep-alive agent, nothing else.
 * Usage: node bare-proxy.js PORT TARGET_URL
 */
const [port, target] = process.argv.slice(2);
const agent = new Agent({ keepAlive: true, maxSockets: 1024 });
const proxy = httpProxy.createProxyServer({ target, agent });
proxy.on('error', (_err, _req, res) => {
  const r = res as import('node:http').ServerResponse;
  if (!r.headersSent) r.writeHead(502);
  r.end();
});
createServer((req, res) => proxy.web(req, res)).listen(Number(port), '127.0.0.1', () => process.stdout.write('listening\n'));
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(0));
