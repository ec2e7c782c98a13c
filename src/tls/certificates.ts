import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { TlsServerConfig, UpstreamConfig } from '../config/schema';

/**
 * The listening port's certificates (server.tls): read from their files,
 * checked (each key matches its certificate), and turned into secure
 * contexts: the default one, and those chosen by SNI name. Read at start and
 * again when a file changes; a pair that does not check keeps the old ones.
 */

export interface CertificateInfo {
  /** `server.tls` or `server.tls.certificates[1]`. */
  name: string;
  subject: string;
  notAfter: Date;
}

export interface ServerContexts {
  /** Options for the default certificate (tls.createServer / setSecureContext). */
  defaultOptions: { cert: Buffer; key: Buffer; minVersion: 'TLSv1.2' | 'TLSv1.3' };
  /** SNI: exact names, then `*.domain` patterns, each with its context. */
  byName: Map<string, SecureContext>;
  wildcards: Array<{ suffix: string; context: SecureContext }>;
  certificates: CertificateInfo[];
}

/** Reads and checks one certificate/key pair; throws with a message naming the file at fault. */
export function readPair(certFile: string, keyFile: string, name: string): { cert: Buffer; key: Buffer; info: CertificateInfo } {
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`${name}: cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const cert = read(certFile, 'certificate');
  const key = read(keyFile, 'key');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new Error(`${name}: ${certFile} is not a PEM certificate`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new Error(`${name}: ${keyFile} is not a PEM private key (or it is encrypted)`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw new Error(`${name}: the key in ${keyFile} does not match the certificate in ${certFile}`);
  return { cert, key, info: { name, subject: x509.subject.replace(/\n/g, ', '), notAfter: new Date(x509.validTo) } };
}

/** Every certificate of server.tls, read and checked; throws the first problem. */
export function loadContexts(tls: TlsServerConfig): ServerContexts {
  const main = readPair(tls.certFile, tls.keyFile, 'server.tls');
  const byName = new Map<string, SecureContext>();
  const wildcards: ServerContexts['wildcards'] = [];
  const certificates = [main.info];
  tls.certificates.forEach((c, i) => {
    const pair = readPair(c.certFile, c.keyFile, `server.tls.certificates[${i}]`);
    certificates.push(pair.info);
    const context = createSecureContext({ cert: pair.cert, key: pair.key, minVersion: tls.minVersion });
    for (const host of c.hosts) {
      const h = host.toLowerCase();
      if (h.startsWith('*.')) wildcards.push({ suffix: h.slice(1), context });
      else byName.set(h, context);
    }
  });
  return { defaultOptions: { cert: main.cert, key: main.key, minVersion: tls.minVersion }, byName, wildcards, certificates };
}

/** The context for an SNI name: an exact name first, then a `*.domain` pattern (one label); undefined means the default. */
export function contextFor(contexts: ServerContexts, servername: string): SecureContext | undefined {
  const name = servername.toLowerCase();
  const exact = contexts.byName.get(name);
  if (exact !== undefined) return exact;
  for (const w of contexts.wildcards) {
    if (name.endsWith(w.suffix) && !name.slice(0, -w.suffix.length).includes('.')) return w.context;
  }
  return undefined;
}

export interface UpstreamTlsMaterial {
  /** For the upstream's https agent. */
  options: { ca?: Buffer; cert?: Buffer; key?: Buffer; servername?: string; minVersion: 'TLSv1.2' | 'TLSv1.3'; rejectUnauthorized: boolean };
  /** A hash of the files' contents: the upstream is rebuilt when it changes. */
  fingerprint: string;
  /** The client certificate (mTLS), for its expiry. */
  certificate: CertificateInfo | undefined;
}

/** An upstream's TLS files (upstreams.<name>.tls), read and checked; throws with a message naming the file at fault. */
export function readUpstreamTls(tls: NonNullable<UpstreamConfig['tls']>, name: string): UpstreamTlsMaterial {
  const where = `upstreams.${name}.tls`;
  let ca: Buffer | undefined;
  if (tls.caFile !== undefined) {
    try {
      ca = readFileSync(tls.caFile);
    } catch (err) {
      throw new Error(`${where}: cannot read the CA file ${tls.caFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    try {
      new X509Certificate(ca);
    } catch {
      throw new Error(`${where}: ${tls.caFile} is not a PEM certificate (or bundle)`);
    }
  }
  const pair = tls.certFile !== undefined && tls.keyFile !== undefined ? readPair(tls.certFile, tls.keyFile, where) : undefined;
  const hash = createHash('sha256');
  for (const b of [ca, pair?.cert, pair?.key]) hash.update(b ?? '-').update('\0');
  return {
    options: {
      ...(ca === undefined ? {} : { ca }),
      ...(pair === undefined ? {} : { cert: pair.cert, key: pair.key }),
      ...(tls.servername === undefined ? {} : { servername: tls.servername }),
      minVersion: tls.minVersion,
      rejectUnauthorized: !tls.insecureSkipVerify,
    },
    fingerprint: hash.digest('hex'),
    certificate: pair?.info,
  };
}

/** The fingerprint of an upstream's TLS files as they are now ('' without tls; a file that cannot be read gives a value of its own). */
export function upstreamTlsFingerprint(tls: UpstreamConfig['tls'], name: string): string {
  if (tls === undefined) return '';
  try {
    return readUpstreamTls(tls, name).fingerprint;
  } catch (err) {
    return `unreadable: ${(err as Error).message}`;
  }
}
