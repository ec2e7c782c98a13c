import { createServer } from 'node:http';

/** The minimal Node upstream used when nginx is not installed: 12-byte body, keep-alive. */
const body = Buffer.from('hello world\n');
createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
})
  .listen(Number(process.argv[2]), '127.0.0.1', () => process.stdout.write('listening\n'));
