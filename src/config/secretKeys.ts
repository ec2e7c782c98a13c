/**
 * Key names whose values are secrets: shown as `***` in the admin API, the
 * console and its editor. A module of its own so the admin app can use it
 * without loading the YAML parser.
 */
export const SECRET_KEY = /^(token|secret|password|passphrase|apikey|api_key|privatekey|private_key|clientsecret|client_secret)$/i;

/** A URL with a password in it (`redis://:pw@host`, `https://user:pw@host`): the password is a secret too. */
export const CREDENTIAL_URL = /^[a-z][a-z0-9+.-]*:\/\/[^/@\s:]*:[^/@\s]+@/i;

/** The URL with its password shown as `***`. */
export function maskUrlPassword(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@\s:]*:)[^/@\s]+@/i, '$1***@');
}
