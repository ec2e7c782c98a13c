import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { loadTableText } from '../config/load';
import { UpstreamTransport } from './upstream';

function transport(url: string): UpstreamTransport {
  const result = loadTableText(`upstreams: { app: { url: "${url}" } }\nroutes: [ { name: all, path: /, upstream: app } ]\n`, 'test.yaml', {});
  if (!result.ok) throw new Error(result.problems.map((p) => p.message).join('\n'));
  return new UpstreamTransport('app', result.table.config.upstreams.app!, () => undefined);
}

describe('upstream transport', () => {
  test.each([
    ['https://10.0.0.5:8443', 'a TLS'],
    ['HTTPS://10.0.0.5:8443', 'a TLS'],
    ['http://10.0.0.5:8080', 'a plain-HTTP'],
    ['HTTP://10.0.0.5:8080', 'a plain-HTTP'],
  ])('%s gets %s pool', (url, kind) => {
    const tls = kind === 'a TLS';
    const t = transport(url);
    try {
      // An https upstream on a plain-HTTP pool fails every request (ERR_INVALID_PROTOCOL); the scheme may be in capitals.
      expect(t.agent instanceof HttpsAgent).toBe(tls);
      expect(t.agent instanceof HttpAgent).toBe(true);
    } finally {
      t.close();
    }
  });
});
