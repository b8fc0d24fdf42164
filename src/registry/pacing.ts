import { sleep } from './retry';
import type { HttpMethod, RequestKind } from './transport';

/**
 * What a registry meters separately. ECR's quotas are per action (PutImage ~10/s,
 * InitiateLayerUpload and CompleteLayerUpload ~100/s, UploadLayerPart ~500/s, the reads thousands):
 * a throttled manifest write must not slow the blob reads down.
 */
export type ActionClass = 'manifest-write' | 'upload-start' | 'blob-transfer' | 'read';

export const ACTION_CLASSES: readonly ActionClass[] = [
  'manifest-write',
  'upload-start',
  'blob-transfer',
  'read',
];

export function actionClass(method: HttpMethod, kind: RequestKind): ActionClass {
  if (kind === 'manifest' && (method === 'PUT' || method === 'DELETE')) return 'manifest-write';
  if (kind === 'upload') return method === 'PUT' || method === 'PATCH' ? 'blob-transfer' : 'upload-start';
  if (kind === 'blob' && method === 'GET') return 'blob-transfer';
  return 'read';
}

export interface PacingOptions {
  /** The rate kept after a throttle, as a share of what the registry accepted in the second before. */
  decrease?: number;
  /** Rate added each second after a decrease, as a share of the rate the decrease started from. */
  increase?: number;
  /** Requests per second never paced below. */
  minRate?: number;
  /** Unpaced again after this long without a throttle. */
  quietMs?: number;
  now?: () => number;
}

const WINDOW_MS = 1000;
const MIN_WINDOW_MS = 100;
const SLOT_MS = 100;
const SLOTS = WINDOW_MS / SLOT_MS;

/**
 * Pacing of one action class at one host: additive increase, multiplicative decrease of the request
 * rate (AIMD). Unpaced until the registry throttles (429, 503, or any answer with `Retry-After`);
 * then the rate drops to `decrease` times what the registry accepted in the last second, grows by a
 * small step each second, and drops again at the next throttle: it settles just under the
 * registry's limit with few refusals, wherever that limit is. `Retry-After` holds every request of
 * the class until then. A rate, not a concurrency window: quotas are per second, and on a fast link
 * even one request at a time can exceed them.
 */
export class ActionPace {
  /** Answers that throttled, and requests sent, since the process started. */
  throttled = 0;
  requests = 0;
  private readonly decrease: number;
  private readonly increase: number;
  private readonly minRate: number;
  private readonly quietMs: number;
  private readonly now: () => number;
  /** When the last decrease happened, and the rate it set and grows from; none yet: unpaced. */
  private decreasedAt: number | undefined;
  private floorRate = Number.POSITIVE_INFINITY;
  private step = 0;
  /** When the next paced request may start. */
  private nextAt = 0;
  private blockedUntil = 0;
  /** Requests sent and throttles answered over the last second, in tenths of a second. */
  private readonly recent = Array.from({ length: SLOTS }, () => ({ slot: -1, sent: 0, refused: 0 }));
  /** When this class first sent a request: the first second's rate is measured over less. */
  private firstAt: number | undefined;

  constructor(options: PacingOptions = {}) {
    this.decrease = options.decrease ?? 0.7;
    this.increase = options.increase ?? 0.05;
    this.minRate = options.minRate ?? 2;
    this.quietMs = options.quietMs ?? 30_000;
    this.now = options.now ?? Date.now;
  }

  /** Requests per second allowed now (Infinity when unpaced). */
  rate(now = this.now()): number {
    if (this.decreasedAt === undefined) return Number.POSITIVE_INFINITY;
    const since = now - this.decreasedAt;
    if (since > this.quietMs) {
      this.decreasedAt = undefined;
      return Number.POSITIVE_INFINITY;
    }
    return this.floorRate + (this.step * since) / 1000;
  }

  /** Waits for the request's turn; answers when it was sent, for `settle`. */
  async acquire(signal?: AbortSignal): Promise<number> {
    const now = this.now();
    let at = Math.max(now, this.blockedUntil);
    const rate = this.rate(now);
    if (rate !== Number.POSITIVE_INFINITY) {
      at = Math.max(at, this.nextAt);
      this.nextAt = at + 1000 / rate;
    }
    this.requests++;
    this.firstAt ??= now;
    this.count(at, 'sent');
    if (at > now) await sleep(at - now, signal, 'waiting for the registry’s pace');
    return at;
  }

  /** Learns from an answer to a request sent at `sentAt`. */
  settle(sentAt: number, status: number, retryAfterMs?: number): void {
    const throttled = status === 429 || status === 503 || (status >= 400 && retryAfterMs !== undefined);
    if (!throttled) return;
    const now = this.now();
    this.throttled++;
    this.count(now, 'refused');
    if (retryAfterMs !== undefined) this.blockedUntil = Math.max(this.blockedUntil, now + retryAfterMs);
    // Sent before the last decrease: that decrease already answered the same overload.
    if (this.decreasedAt !== undefined && sentAt <= this.decreasedAt) return;
    // What the registry let through lately: the requests sent in the last second that it did not
    // refuse (refusals come back fast, acceptances slower; counting answers would miss those in flight).
    const window = Math.max(MIN_WINDOW_MS, Math.min(WINDOW_MS, now - (this.firstAt ?? now)));
    const { sent, refused } = this.lastSecond(now);
    const through = ((sent - refused) * 1000) / window;
    const from = Math.min(this.rate(now), Math.max(through, this.minRate));
    this.floorRate = Math.max(this.minRate, from * this.decrease);
    this.step = Math.max(this.minRate / 2, from * this.increase);
    this.decreasedAt = now;
    this.nextAt = Math.max(this.nextAt, now + 1000 / this.floorRate);
  }

  private count(at: number, what: 'sent' | 'refused'): void {
    const slot = Math.floor(at / SLOT_MS);
    const bucket = this.recent[slot % SLOTS]!;
    if (bucket.slot !== slot) Object.assign(bucket, { slot, sent: 0, refused: 0 });
    bucket[what]++;
  }

  private lastSecond(now: number): { sent: number; refused: number } {
    const current = Math.floor(now / SLOT_MS);
    let sent = 0;
    let refused = 0;
    for (const b of this.recent) {
      if (b.slot > current - SLOTS && b.slot <= current) {
        sent += b.sent;
        refused += b.refused;
      }
    }
    return { sent, refused };
  }
}

/**
 * Every host's and action class's pace in one process: all copies share them, as they share the
 * registries' quotas.
 */
export class Pacing {
  private readonly paces = new Map<string, ActionPace>();

  constructor(private readonly options: PacingOptions = {}) {}

  pace(host: string, action: ActionClass): ActionPace {
    const key = `${host} ${action}`;
    let pace = this.paces.get(key);
    if (!pace) {
      pace = new ActionPace(this.options);
      this.paces.set(key, pace);
    }
    return pace;
  }

  /** Throttled answers and the current rate per action class at a host, for summaries. */
  stats(host: string): { throttled: number; rates: Partial<Record<ActionClass, number>> } {
    let throttled = 0;
    const rates: Partial<Record<ActionClass, number>> = {};
    for (const action of ACTION_CLASSES) {
      const pace = this.paces.get(`${host} ${action}`);
      if (!pace) continue;
      throttled += pace.throttled;
      const rate = pace.rate();
      if (rate !== Number.POSITIVE_INFINITY) rates[action] = Math.round(rate * 10) / 10;
    }
    return { throttled, rates };
  }
}

/** The process's pacing: every Transport uses it unless given another. */
export const registryPacing = new Pacing();
