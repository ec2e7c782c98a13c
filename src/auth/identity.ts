/** The verified user behind a request. */
export interface Identity {
  userId: string;
  email: string | undefined;
  roles: string[];
  /** Where it came from. */
  source: 'jwt' | 'forward';
  /** Headers copied from a forward-auth answer (name, value pairs). */
  copied: string[] | undefined;
}

/** Why a request has no identity, as a stable reason code for logs. */
export type AuthFailure = 'missing' | 'invalid' | 'expired' | 'unavailable' | 'denied';

export type AuthResult =
  | { ok: true; identity: Identity }
  | { ok: false; reason: AuthFailure; detail?: string; deny?: { status: number; headers: string[]; body: Buffer } };

/** `roles` claims come as arrays or as space/comma-separated strings. */
export function parseRoles(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((r): r is string => typeof r === 'string' && r.length > 0);
  if (typeof value === 'string') return value.split(/[\s,]+/).filter(Boolean);
  return [];
}
