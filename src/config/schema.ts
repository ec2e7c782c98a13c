import { z } from 'zod';

/**
 * The route table's one source of truth: the TypeScript types, the defaults and
 * the validation all come from these declarations. Every object is strict, so a
 * typo such as `stripPrefx` is an error instead of a silently ignored key.
 */

/** Numbers may come from `${ENV}` interpolation as strings; accept "8080" as 8080. */
const int = (min: number, max: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v),
    z.number().int().min(min).max(max),
  );

const bool = z.preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean());

export const HTTP_METHODS = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'PATCH',
  'OPTIONS',
  'TRACE',
  'CONNECT',
] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const name = z.string().regex(NAME, 'must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit');

/** A route path as written in the table: absolute, already in normal form. */
const routePath = z
  .string()
  .min(1)
  .refine((p) => p.startsWith('/'), 'must start with "/"');

const upstreamUrl = z.string().refine((u) => {
  try {
    const url = new URL(u);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '' && !url.search && !url.hash && !url.username;
  } catch {
    return false;
  }
}, 'must be an absolute http:// or https:// URL without query, fragment or credentials');

const hostPattern = z
  .string()
  .regex(/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/, 'must be a host name such as "api.example.com" or "*.example.com" (no port)');

/** Header names (the same rule as headerName below; a function so schemas above its declaration can use it). */
function headerNameEarly() {
  return z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name');
}

const method = z
  .string()
  .transform((m) => m.toUpperCase())
  .pipe(z.enum(HTTP_METHODS, { error: (iss) => `"${String(iss.input)}" is not an HTTP method; use one of ${HTTP_METHODS.join(', ')}` }));

export const TlsServerSchema = z.strictObject({
  /** PEM certificate chain and private key: the certificate served when no `certificates` entry matches the SNI name. */
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
  minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  /** Offer HTTP/2 by ALPN (with HTTP/1.1 for clients that do not speak it). */
  http2: bool.default(true),
  /** HTTP/2: streams a client may have open at once on one connection. */
  maxConcurrentStreams: int(1, 10_000).default(128),
  /** More certificates, chosen by the name the client asks for (SNI). */
  certificates: z.array(z.strictObject({ hosts: z.array(hostPattern).min(1), certFile: z.string().min(1), keyFile: z.string().min(1) })).default([]),
});

export const ServerSchema = z.strictObject({
  port: int(0, 65535).default(8080),
  /** Terminate TLS on the listening port; the certificate files are re-read when they change. */
  tls: TlsServerSchema.optional(),
  /** With tls: a plain listener that answers only 308 to https (and the health path). */
  redirectHttp: z.strictObject({ port: int(0, 65535), host: z.string().min(1).optional() }).optional(),
  /** With tls: Strict-Transport-Security on every HTTPS answer (RFC 6797). */
  hsts: z.strictObject({ maxAgeSec: int(0, 63_072_000), includeSubDomains: bool.default(false), preload: bool.default(false) }).optional(),
  /** Processes serving traffic: 1 (this one), a number, or `auto` (one per available core); a primary owns the table and the admin API. */
  workers: z.union([z.literal('auto'), int(1, 256)]).default(1),
  host: z.string().min(1).default('0.0.0.0'),
  /** Served by the gateway itself, checked before any route: no route can shadow it. */
  healthPath: routePath.default('/healthz'),
  /** Peers (IPs or CIDRs) whose X-Forwarded-* headers are believed, e.g. the load balancer in front. */
  trustProxy: z.array(z.string().min(1)).default([]),
  /** How long SIGTERM waits for in-flight requests before closing them. */
  drainTimeoutMs: int(0, 600_000).default(10_000),
  /** Must exceed the idle timeout of any load balancer in front, or it sees 502s. */
  keepAliveTimeoutMs: int(1, 3_600_000).default(65_000),
  headersTimeoutMs: int(1, 3_600_000).default(66_000),
  /** Whole-request receive limit; 0 disables (long uploads). */
  requestTimeoutMs: int(0, 86_400_000).default(300_000),
  /** Requests whose headers exceed this are refused with 431 before any routing. */
  maxHeaderBytes: int(1024, 1_048_576).default(16_384),
  /** `%2F` in a path: `reject` answers 400, `decode` treats it as "/" before matching. */
  encodedSlashes: z.enum(['reject', 'decode']).default('reject'),
});

export const BreakerSchema = z.strictObject({
  enabled: bool.default(true),
  /** Open when at least this share of requests in the window failed... */
  errorPercent: z.preprocess((v) => (typeof v === 'string' && v.trim() !== '' ? Number(v) : v), z.number().gt(0).max(100)).default(50),
  /** ...and at least this many requests were seen in the window. */
  minRequests: int(1, 1_000_000).default(10),
  windowMs: int(100, 3_600_000).default(10_000),
  /** Then let one trial request through (half-open). */
  openMs: int(100, 3_600_000).default(15_000),
  /** Upstream statuses that count as failures (the response still reaches the client). */
  failureStatuses: z.array(int(500, 599)).default([500, 502, 503, 504]),
});

export const OutlierSchema = z.strictObject({
  /** Consecutive 5xx/timeouts before an instance is ejected; a refused connection ejects at once. */
  consecutiveFailures: int(1, 1000).default(5),
  /** First ejection; each further ejection doubles it, up to maxEjectionMs. */
  baseEjectionMs: int(100, 3_600_000).default(5_000),
  maxEjectionMs: int(100, 86_400_000).default(300_000),
});

export const RetryBudgetSchema = z.strictObject({
  /** Retries may add at most this share of the upstream's traffic... */
  percent: int(0, 100).default(20),
  /** ...plus this many in a burst (also the budget at start). */
  burst: int(0, 10_000).default(10),
});

/** Header names and values set, and names removed, on the way in or out (`{param}`, `{requestId}` and `${ENV}` in values). */
export const HeaderEditsSchema = z.strictObject({
  set: z.record(headerNameEarly(), z.string()).default({}),
  remove: z.array(headerNameEarly()).default([]),
});

export const UpstreamSchema = z
  .strictObject({
    url: upstreamUrl.optional(),
    /** Several instances of the same service; traffic is balanced across the healthy ones. */
    urls: z.array(upstreamUrl).min(1).optional(),
    balance: z.enum(['round-robin', 'least-in-flight']).default('round-robin'),
    /** No response headers within this time -> 504. */
    timeoutMs: int(1, 3_600_000).default(30_000),
    /** Send the client's Host header (default) or the upstream URL's host. */
    preserveHost: bool.default(true),
    /** Cap on open connections to each instance (keep-alive pool size). */
    maxSockets: int(1, 65_535).default(1024),
    /** Largest response head accepted from this upstream; a larger one is refused (502), not counted as the upstream failing. */
    maxResponseHeaderBytes: int(1024, 1_048_576).default(65_536),
    /** https:// upstreams: whom to trust, the client certificate (mTLS), the name to ask for; files read when the upstream is built and when they change. */
    tls: z
      .strictObject({
        caFile: z.string().min(1).optional(),
        certFile: z.string().min(1).optional(),
        keyFile: z.string().min(1).optional(),
        servername: z.string().min(1).optional(),
        minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
        insecureSkipVerify: bool.default(false),
      })
      .refine((t) => (t.certFile === undefined) === (t.keyFile === undefined), 'certFile and keyFile go together (the client certificate and its key)')
      .optional(),
    /** Idle keep-alive connections are closed after this; keep it below the upstream's keepAliveTimeout. */
    idleTimeoutMs: int(100, 600_000).default(4_000),
    /** Bulkhead: at most this many requests in flight to this upstream; more are refused (503) or fall back. */
    maxConcurrent: int(1, 1_000_000).optional(),
    breaker: BreakerSchema.default(() => BreakerSchema.parse({})),
    outlier: OutlierSchema.default(() => OutlierSchema.parse({})),
    retryBudget: RetryBudgetSchema.default(() => RetryBudgetSchema.parse({})),
    /** Headers set or removed on every request to this upstream (before the route's own edits). */
    requestHeaders: HeaderEditsSchema.optional(),
    /** Headers set or removed on every answer of this upstream (before the route's own edits). */
    responseHeaders: HeaderEditsSchema.optional(),
  })
  .refine((u) => (u.url === undefined) !== (u.urls === undefined), { message: 'give either url or urls (not both, not neither)' })
  // One shape for the rest of the code: `urls` always lists the instances.
  .transform((u) => ({ ...u, urls: u.urls ?? [u.url!] }));

export const RetrySchema = z.strictObject({
  enabled: bool.default(true),
  /** Only these methods are retried; add POST only if its handler is idempotent. */
  methods: z.array(z.string().transform((m) => m.toUpperCase()).pipe(z.enum(HTTP_METHODS))).default(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']),
});

const percent = z.preprocess((v) => (typeof v === 'string' && v.trim() !== '' ? Number(v) : v), z.number().min(0).max(100));

export const CanarySchema = z.strictObject({
  /** The new side; the route's `upstream` is the primary. */
  upstream: name,
  /** Share of users (not requests) sent to the canary, 0..100, decimals allowed: the target. */
  percent,
  /** What keeps a user on one side: the verified user, a cookie, or a header such as a tenant id. */
  sticky: z
    .string()
    .regex(/^(user|cookie|header:[A-Za-z0-9!#$%&'*+.^_`|~-]+)$/, 'must be user, cookie or header:<Name>')
    .default('user'),
  /** Routes with the same cohort put a user on the same side. */
  cohort: name.optional(),
  /** Cookie holding the random sticky key (sticky: cookie, and the fallback of sticky: user). */
  cookieName: z.string().regex(/^[A-Za-z0-9_-]+$/).default('strangler_sticky'),
  /** Honour the override header (`always` | `never`). */
  allowOverride: bool.default(false),
  overrideHeader: z.string().min(1).default('X-Canary'),
  /** When set, only users with one of these roles may override. */
  overrideRoles: z.array(z.string().min(1)).min(1).optional(),
  /** Removed from the path for the canary side (the route's stripPrefix applies to the primary). */
  stripPrefix: routePath.optional(),
  rollback: z
    .strictObject({
      maxErrorPercent: percent.default(5),
      minRequests: int(1, 1_000_000).default(50),
      windowMs: int(1000, 86_400_000).default(60_000),
    })
    .optional(),
  /** Progressive ramp: the effective share climbs these steps (capped by percent) while the canary is healthy. */
  steps: z.array(percent).min(1).optional(),
  stepEveryMs: int(1000, 604_800_000).default(600_000),
  /** The ramp pauses while the canary's p95 latency exceeds the primary's by more than this factor. */
  maxLatencyFactor: z.preprocess((v) => (typeof v === 'string' ? Number(v) : v), z.number().min(1)).default(1.5),
  /** Promotion gate: the ramp steps only while the route's parallel run agrees (needs the route's `shadow`). */
  gate: z
    .strictObject({
      maxMismatchPercent: percent,
      minCompared: int(1, 10_000_000).default(200),
      windowMs: int(1000, 86_400_000).default(600_000),
    })
    .optional(),
});

const headerName = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name');

export const ShadowSchema = z.strictObject({
  /** The upstream that gets a copy of the route's requests (the parallel run); its answers are compared, never served. */
  upstream: name,
  /** Share of eligible requests copied (a random draw per request), 0..100. */
  percent: percent.default(100),
  /** Methods copied; a request with a body is not copied (yet). */
  methods: z.array(method).min(1).default(['GET', 'HEAD']),
  /** Removed from the path for the shadow side. */
  stripPrefix: routePath.optional(),
  /** The copy's own deadline, headers and body. */
  timeoutMs: int(1, 600_000).default(5_000),
  /** Copies in flight at most; beyond it a request is not copied (skipped: saturated). */
  maxConcurrent: int(1, 10_000).default(64),
  /** Answers larger than this are not compared (skipped: too-large). */
  maxBodyBytes: int(0, 64 * 1024 * 1024).default(1_048_576),
  /** Send the client's Authorization and Cookie to the shadow too. */
  forwardCredentials: bool.default(false),
  compare: z
    .strictObject({
      /** Response headers compared; `*`: every header either side sent except the volatile ones and ignoreHeaders. */
      headers: z.union([z.literal('*'), z.array(headerName)]).default(['content-type', 'location', 'cache-control']),
      /** Response headers never compared (removed from `headers`; with `*`, added to the volatile ones). */
      ignoreHeaders: z.array(headerName).default([]),
      ignore: z.array(z.string().regex(/^\$/, 'must be a JSON path starting with $')).default([]),
      unordered: z.array(z.string().regex(/^\$/, 'must be a JSON path starting with $')).default([]),
      /** JSON paths whose values are shown as *** in samples (they are still compared). */
      redact: z.array(z.string().regex(/^\$/, 'must be a JSON path starting with $')).default([]),
    })
    .default(() => ({ headers: ['content-type', 'location', 'cache-control'], ignoreHeaders: [], ignore: [], unordered: [], redact: [] })),
  /** Noise learning (Diffy's method): some copied GET/HEAD requests are also sent a second time to the primary. */
  noise: z
    .strictObject({
      /** Percent of copied GET/HEAD requests also sent to the primary a second time. */
      sample: percent.default(5),
      /** A field is a real difference only when its primary-vs-shadow rate exceeds its primary-vs-primary rate by this relative share... */
      relativePercent: percent.default(20),
      /** ...and by this share of the comparisons. */
      absolutePercent: percent.default(0.03),
    })
    .optional(),
});

/** A condition on a header or query parameter: an exact value, `present`, or a constrained template (`{v:int}`, capturing `v`). */
const conditionValue = z.string();

export const RouteMatchSchema = z.strictObject({
  /** Header conditions, by name: all must hold. */
  headers: z.record(headerNameEarly(), conditionValue).default({}),
  /** Query parameter conditions, by name: all must hold. */
  query: z.record(z.string().min(1), conditionValue).default({}),
});

export const QueryEditsSchema = z.strictObject({
  /** Parameters set (replacing every occurrence; values may use {param}). */
  set: z.record(z.string().min(1), z.string()).default({}),
  remove: z.array(z.string().min(1)).default([]),
});

export const RedirectSchema = z.strictObject({
  /** Where to: a path or an absolute URL; `{param}` fills in captured parameters. */
  to: z.string().min(1),
  status: z.union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)]).default(302),
  /** Drop the request's query instead of passing it on. */
  dropQuery: bool.default(false),
});

export const RespondSchema = z.strictObject({
  status: int(200, 599),
  body: z.string().default(''),
  contentType: z.string().min(1).default('text/plain; charset=utf-8'),
});

export const RateLimitSchema = z.strictObject({
  /** Whose allowance: the signed-in user (the IP without one), the client IP, a header's value, or the whole route. */
  key: z.union([z.enum(['user', 'ip', 'route']), z.string().regex(/^header:[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be user, ip, route or header:<Name>')]).default('user'),
  /** Requests per window; a client may use its whole allowance at once. */
  limit: int(1, 10_000_000),
  windowMs: int(1, 86_400_000).default(60_000),
  /** Extra requests allowed on top of `limit` in a burst. */
  burst: int(0, 10_000_000).default(0),
});

export const RouteSchema = z.strictObject({
  name,
  /** A path prefix, an exact path, or a template (`/users/{id}`, `/files/{rest*}`, `{id:int}`). */
  path: routePath,
  /** `true`: only this exact path; default: this path and everything below it on a segment boundary. */
  exact: bool.default(false),
  methods: z.array(method).min(1).optional(),
  host: hostPattern.optional(),
  /** Header and query conditions, besides path, methods and host. */
  match: RouteMatchSchema.optional(),
  /** Where matching requests go; or, instead, `redirect` or `respond`. */
  upstream: name.optional(),
  /** Answer with a redirect instead of proxying. */
  redirect: RedirectSchema.optional(),
  /** Answer with a fixed response instead of proxying (retired endpoints, maintenance). */
  respond: RespondSchema.optional(),
  /** The upstream path built from the captured parameters (`/v2/users/{id}`); not with stripPrefix. */
  rewrite: routePath.optional(),
  /** Query parameters set or removed on the way upstream (the rest of the query is passed on). */
  query: QueryEditsSchema.optional(),
  /** Overrides the upstream's timeoutMs for this route. */
  timeoutMs: int(1, 3_600_000).optional(),
  /** Request bodies larger than this get 413 (by Content-Length before proxying, or when a chunked body passes it). */
  maxBodyBytes: int(0, 1024 * 1024 * 1024).optional(),
  /** Requests per client and window (429 beyond); `false` turns the table's default off for this route. */
  rateLimit: z.union([RateLimitSchema, z.literal(false)]).optional(),
  /** Headers set or removed on the way to the upstream. */
  requestHeaders: HeaderEditsSchema.optional(),
  /** Headers set or removed on the answer. */
  responseHeaders: HeaderEditsSchema.optional(),
  /** Removed from the front of the path before forwarding; must be a segment prefix of `path`. */
  stripPrefix: routePath.optional(),
  /** Whether WebSocket upgrades are proxied on this route. */
  websocket: bool.default(true),
  /** Put the stripped prefix back in front of an absolute-path Location (nginx's proxy_redirect); default: on when a prefix is stripped. */
  rewriteLocation: bool.optional(),
  /** Put the stripped prefix back in front of a Set-Cookie Path (nginx's proxy_cookie_path); default: on when a prefix is stripped. */
  rewriteCookiePath: bool.optional(),
  /** Upstream that answers (with the original, unstripped path) when `upstream`'s circuit is open or it cannot be reached. */
  fallback: name.optional(),
  /** Retry once on a connect failure or a reset reused connection, for these methods. */
  /** Default (when absent): enabled for GET, HEAD, OPTIONS, PUT, DELETE. Left out of the parsed table so a large table stays small. */
  retry: RetrySchema.optional(),
  /** Send a share of users to a new upstream (canary migration). */
  canary: CanarySchema.optional(),
  /** Copy requests to a new upstream and compare its answers with the served ones (parallel run). */
  shadow: ShadowSchema.optional(),
  /** none | optional | required; default: auth.default. */
  auth: z.enum(['none', 'optional', 'required']).optional(),
  /** Any of these roles is needed (implies auth: required). */
  roles: z.array(z.string().min(1)).min(1).optional(),
  /** Send the client's Authorization header and cookies upstream (default) or drop them. */
  forwardCredentials: bool.default(true),
  /** Request bodies up to this size are kept so a retry or fallback can replay them. */
  replayBodyBytes: int(0, 64 * 1024 * 1024).default(65_536),
});

export const LogSchema = z.strictObject({
  level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** `pretty` is for a developer's terminal; default: pretty on a TTY outside production. */
  format: z.enum(['json', 'pretty']).optional(),
  /** `stdout`, `off`, or a file path for the access log. */
  access: z.string().min(1).default('stdout'),
});

export const AdminSchema = z.strictObject({
  port: int(0, 65535).default(9901),
  /** Loopback by default: the admin API changes routing. */
  host: z.string().min(1).default('127.0.0.1'),
  /** `Authorization: Bearer <token>`; required unless host is loopback. Shown as *** everywhere. */
  token: z.string().min(1).optional(),
  /** Largest body accepted by POST /routes/validate. */
  maxBodyBytes: int(1024, 64 * 1024 * 1024).default(4 * 1024 * 1024),
  /** Let the console (PUT /table) save the route table file; read-only otherwise. */
  allowEdit: bool.default(false),
  /** Earlier versions of the route table file kept beside it (in `<file>.history/`) when the console saves it. */
  historySize: int(1, 1000).default(20),
});

export const ReloadSchema = z.strictObject({
  /** Watch the route table file and apply valid edits automatically. */
  watch: bool.default(true),
  /** Bursts of file events within this window are one reload. */
  debounceMs: int(0, 60_000).default(150),
  /** A stat check on this interval catches edits that file events miss (network and container mounts). 0 disables. */
  pollIntervalMs: int(0, 600_000).default(2_000),
});


export const JwtSchema = z
  .strictObject({
    /** HS256 shared secret (use ${ENV}); shown as *** everywhere. */
    secret: z.string().min(16, 'must be at least 16 characters').optional(),
    /** RS256/ES256 public keys; fetched once, refreshed in the background, kept when the key server is down. */
    jwksUrl: upstreamUrl.optional(),
    issuer: z.string().min(1).optional(),
    audience: z.string().min(1).optional(),
    /** The token may also come from this cookie (besides Authorization: Bearer). */
    cookie: z.string().min(1).optional(),
    algorithms: z.array(z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA'])).min(1).default(['RS256', 'ES256']),
    clockToleranceSec: int(0, 600).default(30),
    /** Claim names, for issuers that use others. */
    claims: z
      .strictObject({ userId: z.string().min(1).default('sub'), email: z.string().min(1).default('email'), roles: z.string().min(1).default('roles') })
      .default(() => ({ userId: 'sub', email: 'email', roles: 'roles' })),
    /** Background refresh of the key set. */
    jwksRefreshMs: int(1000, 86_400_000).default(300_000),
    /** An unknown `kid` refetches the key set at most this often. */
    jwksMinRefetchMs: int(0, 3_600_000).default(10_000),
    /** Verified tokens kept (by hash) until they expire, so a signature is not re-checked per request. */
    cacheSize: int(0, 1_000_000).default(10_000),
  })
  .refine((j) => j.secret !== undefined || j.jwksUrl !== undefined, { message: 'give secret (HS256), jwksUrl (RS256/ES256), or both' });

export const ForwardAuthSchema = z.strictObject({
  /** Asked with the request's cookies and Authorization; 2xx = authenticated, 401/403 = that answer. */
  url: upstreamUrl,
  copyHeaders: z.array(headerName).default(['X-User-Id', 'X-User-Email', 'X-User-Roles']),
  cacheMs: int(0, 3_600_000).default(30_000),
  timeoutMs: int(1, 60_000).default(2_000),
  cacheSize: int(0, 1_000_000).default(10_000),
  breaker: BreakerSchema.default(() => BreakerSchema.parse({})),
});

export const InternalTokenSchema = z.strictObject({
  /** Sign a short-lived JWT with the verified identity for upstreams. */
  enabled: bool.default(false),
  /** `X-Strangler-Identity` or `Authorization` (replaces the client's). */
  header: headerName.default('X-Strangler-Identity'),
  issuer: z.string().min(1).default('strangler'),
  audience: z.string().min(1).optional(),
  ttlSec: int(5, 3600).default(60),
  /** PKCS#8 PEM file of an ES256 key, shared by every replica; default: a key made at start. */
  privateKeyFile: z.string().min(1).optional(),
  /** Where the gateway publishes its public keys (on the gateway port, before routing). */
  jwksPath: routePath.default('/.well-known/strangler/jwks.json'),
});

export const AuthSchema = z.strictObject({
  /** Policy of routes that do not set `auth`. */
  default: z.enum(['none', 'optional', 'required']).default('none'),
  jwt: JwtSchema.optional(),
  forward: ForwardAuthSchema.optional(),
  identityHeaders: z
    .strictObject({ userId: headerName.default('X-User-Id'), email: headerName.default('X-User-Email'), roles: headerName.default('X-User-Roles') })
    .default(() => ({ userId: 'X-User-Id', email: 'X-User-Email', roles: 'X-User-Roles' })),
  /** Browsers without a session are sent here (with ?next=<original path>). */
  loginUrl: z.string().min(1).default('/login'),
  internalToken: InternalTokenSchema.default(() => InternalTokenSchema.parse({})),
});

export const StateSchema = z.strictObject({
  /** Share canary rollbacks and resets, and rate-limit counters, between replicas. */
  redis: z
    .strictObject({
      /** redis:// or rediss:// (use ${REDIS_URL}); or a list: Redis Cluster nodes (redis://), or sentinels (redis-sentinel://, with sentinelName). */
      url: z.union([
        z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL, or a list of cluster nodes or sentinels'),
        z
          .array(z.string().regex(/^(rediss?|redis-sentinel):\/\/[^/]/, 'each must be a redis://, rediss:// (cluster nodes) or redis-sentinel:// (sentinels) address'))
          .min(1)
          .refine((l) => l.every((u) => u.startsWith('redis-sentinel:')) || l.every((u) => !u.startsWith('redis-sentinel:')), 'a list is either cluster nodes (redis://) or sentinels (redis-sentinel://), not both'),
      ]),
      /** The master's name the sentinels know (a list of redis-sentinel:// addresses). */
      sentinelName: z.string().min(1).default('mymaster'),
      /** No braces: the gateway adds a hash tag of its own to keys used together (Redis Cluster). */
      keyPrefix: z.string().min(1).regex(/^[^{}]*$/, 'must not contain { or }').default('strangler:'),
      connectTimeoutMs: int(100, 60_000).default(2_000),
    })
    .optional(),
});

export const MigrationSchema = z.strictObject({
  /** Upstream names that count as the old system; default: the upstream of the route whose path is `/`. */
  legacy: z.array(name).min(1).optional(),
  /** Explicit path templates (`/reports/{name}/pdf`) for the legacy inventory, tried in order before the heuristics. */
  templates: z.array(z.string().regex(/^\/[^\s?#]*$/, 'must be a path starting with /, with {name} placeholders')).default([]),
  /** Count requests by side and keep the legacy inventory (needs the admin API). */
  count: bool.default(true),
  /** Path templates kept in the legacy inventory (the most requested ones). */
  inventorySize: int(10, 100_000).default(1000),
});

export const TracingSchema = z.strictObject({
  /** OpenTelemetry traces over OTLP/HTTP (protobuf), batched and sent in the background. */
  otlp: z.strictObject({
    /** The collector's base URL (`http://otel-collector:4318`); `/v1/traces` is added unless the URL already ends with it. */
    endpoint: z.string().url().refine((u) => /^https?:/i.test(u), 'must be an http:// or https:// URL'),
    /** Sent with every export (an API key); values are secrets, shown as *** by the admin API and the console. */
    headers: z.record(z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be a header name'), z.string()).default({}),
    /** An export that takes longer is given up (its spans counted as dropped). */
    timeoutMs: int(100, 60_000).default(5_000),
  }),
  /** Share of new traces recorded (0..1). Parent-based: a request whose traceparent is sampled is always recorded, one not sampled never. */
  sampleRatio: z.preprocess((v) => (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v)) ? Number(v) : v), z.number().min(0).max(1)).default(1),
  /** The `service.name` of the gateway's spans. */
  serviceName: z.string().min(1).default('strangler'),
  /** Spans waiting to be exported; past it new ones are dropped (and counted), so a slow collector costs bounded memory. */
  maxQueueSize: int(1, 1_000_000).default(2048),
  /** Spans per export. */
  maxExportBatchSize: int(1, 100_000).default(512),
  /** How long a span may wait for its batch. */
  scheduledDelayMs: int(10, 60_000).default(1000),
});

export const RouteTableSchema = z.strictObject({
  auth: AuthSchema.optional(),
  server: ServerSchema.default(() => ServerSchema.parse({})),
  admin: AdminSchema.optional(),
  reload: ReloadSchema.default(() => ReloadSchema.parse({})),
  log: LogSchema.default(() => LogSchema.parse({})),
  upstreams: z.record(name, UpstreamSchema).refine((u) => Object.keys(u).length > 0, 'declare at least one upstream'),
  routes: z.array(RouteSchema),
  /** Which upstreams are the old system, for the migration report and the legacy inventory. */
  migration: MigrationSchema.default(() => MigrationSchema.parse({})),
  /** State shared between replicas (Redis). */
  state: StateSchema.optional(),
  /** Where the table (all but the process-level keys) comes from: this file, or Redis (state.redis), published with `strangler push`. */
  source: z.enum(['file', 'redis']).default('file'),
  /** The rate limit of every proxied route that sets none of its own. */
  rateLimit: RateLimitSchema.optional(),
  /** OpenTelemetry tracing; off (and its libraries not loaded) without it. */
  tracing: TracingSchema.optional(),
});

export type ServerConfig = z.infer<typeof ServerSchema>;
export type UpstreamConfig = z.infer<typeof UpstreamSchema>;
export type RouteConfig = z.infer<typeof RouteSchema>;
export type LogConfig = z.infer<typeof LogSchema>;
export type AdminConfig = z.infer<typeof AdminSchema>;
export type ReloadConfig = z.infer<typeof ReloadSchema>;
export type AuthConfig = z.infer<typeof AuthSchema>;
export type CanaryConfig = z.infer<typeof CanarySchema>;
export type ShadowConfig = z.infer<typeof ShadowSchema>;
export type MigrationConfig = z.infer<typeof MigrationSchema>;
export type HeaderEdits = z.infer<typeof HeaderEditsSchema>;
export type RateLimitConfig = z.infer<typeof RateLimitSchema>;
export type StateConfig = z.infer<typeof StateSchema>;
export type RedirectConfig = z.infer<typeof RedirectSchema>;
export type RespondConfig = z.infer<typeof RespondSchema>;
export type JwtConfig = z.infer<typeof JwtSchema>;
export type ForwardAuthConfig = z.infer<typeof ForwardAuthSchema>;
export type BreakerConfig = z.infer<typeof BreakerSchema>;
export type OutlierConfig = z.infer<typeof OutlierSchema>;
export type RouteTableConfig = z.infer<typeof RouteTableSchema>;
export type TlsServerConfig = z.infer<typeof TlsServerSchema>;
export type TracingConfig = z.infer<typeof TracingSchema>;
