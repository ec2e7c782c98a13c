/**
 * Key names whose values are secrets: shown as `***` in the admin API, the
 * console and its editor. A module of its own so the admin app can use it
 * without loading the YAML parser.
 */
export const SECRET_KEY = /^(token|secret|password|passphrase|apikey|api_key|privatekey|private_key|clientsecret|client_secret)$/i;

/** Values that are secrets whatever their key's name: the headers sent to the trace collector (an API key). */
export function isSecretPath(path: readonly string[]): boolean {
  return path.length === 4 && path[0] === 'tracing' && path[1] === 'otlp' && path[2] === 'headers';
}

/** A URL with a password in it (`redis://:pw@host`, `https://user:pw@host`): the password is a secret too. */
export const CREDENTIAL_URL = /^[a-z][a-z0-9+.-]*:\/\/[^/@\s:]*:[^/@\s]+@/i;

/** The URL with its password shown as `***`. */
export function maskUrlPassword(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@\s:]*:)[^/@\s]+@/i, '$1***@');
}
