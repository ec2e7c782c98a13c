import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCert {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
}

/** A self-signed ECDSA P-256 certificate for `names` (the first is the CN), made by Debian's openssl. */
export function makeCert(names: string[], opts: { days?: number; dir?: string } = {}): TestCert {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'strangler-tls-'));
  const base = join(dir, `${names[0]!.replace(/[^a-z0-9]/gi, '_')}-${Math.random().toString(36).slice(2, 8)}`);
  const certFile = `${base}.crt`;
  const keyFile = `${base}.key`;
  const san = names.map((n) => (/^[\d.]+$/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', String(opts.days ?? 30), '-subj', `/CN=${names[0]}`, '-addext', `subjectAltName=${san}`], { stdio: 'ignore' });
  return { certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) };
}
