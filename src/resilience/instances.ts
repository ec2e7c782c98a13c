import type { OutlierConfig } from '../config/schema';

/** One instance (URL) of an upstream, with its passive health. */
export class Instance {
  inFlight = 0;
  consecutiveFailures = 0;
  ejections = 0;
  ejectedUntil = 0;
  constructor(
    readonly index: number,
    readonly url: string,
  ) {}

  ejected(now: number): boolean {
    return this.ejectedUntil > now;
  }
}

/**
 * Picks an instance for each attempt: round-robin (or least-in-flight) over
 * the instances not ejected. Passive outlier ejection: a refused connection
 * ejects at once, `consecutiveFailures` 5xx/timeouts in a row eject; each
 * ejection lasts twice the previous one (up to a maximum), and a success
 * after coming back resets the count. A single-instance upstream is never
 * ejected: its circuit breaker does that job.
 */
export class InstanceSet {
  readonly instances: Instance[];
  private next = 0;

  constructor(
    urls: readonly string[],
    private readonly balance: 'round-robin' | 'least-in-flight',
    private readonly outlier: OutlierConfig,
  ) {
    this.instances = urls.map((u, i) => new Instance(i, u));
  }

  /** An instance to try, other than `avoid` when possible; undefined when all are ejected. */
  pick(avoid?: Instance): Instance | undefined {
    const list = this.instances;
    if (list.length === 1) return list[0]!.ejected(Date.now()) ? undefined : list[0];
    const now = Date.now();
    let best: Instance | undefined;
    for (let i = 0; i < list.length; i++) {
      const inst = list[(this.next + i) % list.length]!;
      if (inst === avoid || inst.ejected(now)) continue;
      if (this.balance === 'round-robin') {
        best = inst;
        break;
      }
      if (best === undefined || inst.inFlight < best.inFlight) best = inst;
    }
    this.next = (this.next + 1) % list.length;
    return best ?? (avoid !== undefined && !avoid.ejected(now) ? avoid : undefined);
  }

  success(inst: Instance): void {
    inst.consecutiveFailures = 0;
    if (inst.ejections > 0 && !inst.ejected(Date.now())) inst.ejections = 0;
  }

  /** Records a failure; returns the ejection time in ms when this failure ejected the instance. */
  failure(inst: Instance, connectFailure: boolean): number {
    inst.consecutiveFailures++;
    // With one instance there is nothing to balance to: the circuit breaker is what protects it.
    if (this.instances.length === 1) return 0;
    if (!connectFailure && inst.consecutiveFailures < this.outlier.consecutiveFailures) return 0;
    if (inst.ejected(Date.now())) return 0;
    const ms = Math.min(this.outlier.maxEjectionMs, this.outlier.baseEjectionMs * 2 ** inst.ejections);
    inst.ejections++;
    inst.ejectedUntil = Date.now() + ms;
    inst.consecutiveFailures = 0;
    return ms;
  }

  allEjected(): boolean {
    const now = Date.now();
    return this.instances.every((i) => i.ejected(now));
  }
}
