/**
 * Headers only the gateway may set. A client's copy is dropped whatever its
 * spelling (names compared lower-case with `_` read as `-`, because CGI-style
 * servers map `X-Forwarded_For` onto the same variable as `X-Forwarded-For`),
 * and a route's header edits may not name them.
 */
export const GATEWAY_OWNED: readonly string[] = [
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-real-ip',
  'forwarded',
  // Marks the parallel run's copies, which services may answer without side effects: a client setting it would turn a real write into a no-op.
  'x-strangler-shadow',
];
