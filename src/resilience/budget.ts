/**
 * Retries may add at most `percent` of an upstream's traffic, plus a small
 * burst: a token bucket filled by requests and drained by retries, so retries
 * cannot multiply an outage.
 */
export class RetryBudget {
  private tokens: number;
  private readonly perRequest: number;
  private readonly cap: number;

  constructor(percent: number, burst: number) {
    this.tokens = burst;
    this.perRequest = percent / 100;
    // Room for at least one retry, or a percentage alone could never earn one.
    this.cap = Math.max(1, burst);
  }

  request(): void {
    const t = this.tokens + this.perRequest;
    this.tokens = t > this.cap ? this.cap : t;
  }

  tryRetry(): boolean {
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
