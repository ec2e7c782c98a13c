/**
 * Key names whose values are secrets: shown as `***` in the admin API, the
 * console and its editor. A module of its own so the admin app can use it
 * without loading the YAML parser.
 */
export const SECRET_KEY = /^(token|secret|password|passphrase|apikey|api_key|privatekey|private_key|clientsecret|client_secret)$/i;
