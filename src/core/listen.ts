import type { AddressInfo, Server } from 'node:net';

/** Listens on `port` and `host`; resolves with the port bound (the one asked for, or the one given for 0), rejects if it cannot. */
export function listenOn(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
