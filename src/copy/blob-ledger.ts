import { parseEcrHost } from '../core/ecr-host';
import { abortError, untilAborted } from '../errors';

/** How a blob came to be in a destination repository. */
export type BlobOutcome = 'copied' | 'mounted' | 'present';

/**
 * Where a registry lets us mount a blob from another of its repositories:
 * - `eager`: from any repository that holds it, even one whose image is not complete yet (distribution
 *   links an uploaded blob into its repository at once); a transfer of a blob another repository is
 *   receiving waits for that one, then mounts;
 * - `committed`: only from a repository where a manifest referencing the blob was put (ECR answers 201
 *   only then); nothing waits;
 * - `off`: never (a mount request failed here once).
 */
export type MountPolicy = 'eager' | 'committed' | 'off';

/** A repository of the same registry to mount a blob from, and whether an image there references it. */
export interface MountSource {
  repository: string;
  committed: boolean;
}

/** What a mount attempt came to: 201, 202 (the registry wants the bytes), or an error. */
export type MountAnswer = 'mounted' | 'refused' | 'failed';

export interface BlobLedgerOptions {
  /** How long a blob seen at a repository is trusted without looking again (default 10 minutes). */
  heldTtlMs?: number;
  now?: () => number;
}

interface Held {
  at: number;
  /** A manifest referencing the blob was put in this repository. */
  committed: boolean;
}

interface RegistryState {
  policy: MountPolicy;
  /** digest → repository → what we know. */
  held: Map<string, Map<string, Held>>;
  /** `repository@digest` → the transfer in flight. */
  pending: Map<string, Promise<BlobOutcome>>;
  /** digest → the first transfer of that blob into this registry, which eager mounts wait for. */
  leaders: Map<string, Promise<BlobOutcome>>;
  /** Repositories known not to have existed (so to hold no blob) when this process first met them. */
  empty: Set<string>;
}

export const DEFAULT_HELD_TTL_MS = 10 * 60_000;
/** Above this many remembered blob placements, expired ones are dropped. */
const PRUNE_AT = 50_000;

/**
 * What this process knows of blobs at destination registries, keyed by registry host, repository and
 * digest: which transfers are in flight, which repositories hold a blob, and which of them reference it
 * from a committed manifest. One ledger is shared by everything one runtime copies (the mirror
 * Lambda's records of a batch and its warm container's later batches, one `sync` run), so a blob is
 * transferred once per destination repository however many copies want it at the same time (as
 * go-containerregistry's pusher keeps one upload per digest in flight), and can be mounted from another
 * repository of the same registry rather than uploaded again. Never across registries: a mount source
 * is always a repository of the registry the blob is going to.
 *
 * What it knows can go stale (a repository deleted behind our back): entries expire after `heldTtlMs`,
 * and a copy whose manifest is refused for missing content forgets the repository and looks again.
 */
export class BlobLedger {
  private readonly registries = new Map<string, RegistryState>();
  private readonly heldTtlMs: number;
  private readonly now: () => number;
  private size = 0;

  constructor(options: BlobLedgerOptions = {}) {
    this.heldTtlMs = options.heldTtlMs ?? DEFAULT_HELD_TTL_MS;
    this.now = options.now ?? Date.now;
  }

  /**
   * Makes sure the blob is in the repository, running `transfer` unless that is already known or under
   * way: a second caller for the same repository and blob waits for the first, and is told `present`
   * (with `own: false`). When the first fails, a waiter tries itself. Under the `eager` policy, a
   * transfer whose blob is on its way into another repository of the registry first waits for that
   * one (then it can mount). `signal` ends the waiting; a transfer runs under its caller's own signal.
   */
  async claim(
    registry: string,
    repository: string,
    digest: string,
    transfer: () => Promise<BlobOutcome>,
    signal?: AbortSignal,
  ): Promise<{ outcome: BlobOutcome; own: boolean }> {
    const state = this.state(registry);
    const key = `${repository}@${digest}`;
    const what = `blob ${digest}`;
    for (;;) {
      if (signal?.aborted) throw abortError(signal, what);
      if (this.holds(state, repository, digest)) return { outcome: 'present', own: false };
      const pending = state.pending.get(key);
      if (pending) {
        try {
          await untilAborted(pending, signal, what);
          return { outcome: 'present', own: false };
        } catch (err) {
          if (signal?.aborted) throw err;
          continue; // the first caller failed: try ourselves
        }
      }
      const leader =
        state.policy === 'eager' && !this.sourceIn(state, repository, digest)
          ? state.leaders.get(digest)
          : undefined;
      const own = (async () => {
        if (leader) await untilAborted(leader, signal, what).catch(rethrowIfAborted(signal));
        return transfer();
      })();
      state.pending.set(key, own);
      if (!leader && !state.leaders.has(digest)) state.leaders.set(digest, own);
      try {
        const outcome = await own;
        this.hold(state, repository, digest, false);
        return { outcome, own: true };
      } finally {
        if (state.pending.get(key) === own) state.pending.delete(key);
        if (state.leaders.get(digest) === own) state.leaders.delete(digest);
      }
    }
  }

  /** A repository of the same registry to mount the blob from, if the policy allows one. */
  mountSource(registry: string, repository: string, digest: string): MountSource | undefined {
    const state = this.registries.get(registry);
    return state ? this.sourceIn(state, repository, digest) : undefined;
  }

  /** Learns from a mount attempt what the registry allows (see MountPolicy). */
  mountAnswered(registry: string, source: MountSource, answer: MountAnswer): void {
    const state = this.state(registry);
    if (answer === 'failed') state.policy = 'off';
    else if (answer === 'refused' && !source.committed && state.policy === 'eager')
      state.policy = 'committed';
  }

  policy(registry: string): MountPolicy {
    return this.state(registry).policy;
  }

  /** The blob is in the repository (a HEAD found it there). */
  present(registry: string, repository: string, digest: string): void {
    this.hold(this.state(registry), repository, digest, false);
  }

  /** A manifest referencing these blobs was put in the repository: they can be mounted from there. */
  committed(registry: string, repository: string, digests: readonly string[]): void {
    const state = this.state(registry);
    for (const digest of digests) this.hold(state, repository, digest, true);
  }

  /**
   * The repository did not exist when listed (a `sync` into a new repository): it holds no blob but
   * those this process puts there, so a copy need not ask for each blob before sending it.
   */
  emptyRepository(registry: string, repository: string): void {
    this.state(registry).empty.add(repository);
  }

  /** Whether every blob of the repository is one this ledger put there or saw arrive. */
  knownEmpty(registry: string, repository: string): boolean {
    return this.registries.get(registry)?.empty.has(repository) ?? false;
  }

  /** Forgets what is known of a repository (it was deleted, or refused content we thought it had). */
  forgetRepository(registry: string, repository: string): void {
    const state = this.registries.get(registry);
    if (!state) return;
    state.empty.delete(repository);
    for (const [digest, repositories] of state.held) {
      if (repositories.delete(repository)) this.size--;
      if (repositories.size === 0) state.held.delete(digest);
    }
  }

  private state(registry: string): RegistryState {
    let state = this.registries.get(registry);
    if (!state) {
      state = {
        // ECR mounts only from a repository whose committed manifest references the blob.
        policy: parseEcrHost(registry) ? 'committed' : 'eager',
        held: new Map(),
        pending: new Map(),
        leaders: new Map(),
        empty: new Set(),
      };
      this.registries.set(registry, state);
    }
    return state;
  }

  private fresh(held: Held | undefined): held is Held {
    return held !== undefined && this.now() - held.at < this.heldTtlMs;
  }

  private holds(state: RegistryState, repository: string, digest: string): boolean {
    return this.fresh(state.held.get(digest)?.get(repository));
  }

  private sourceIn(state: RegistryState, repository: string, digest: string): MountSource | undefined {
    if (state.policy === 'off') return undefined;
    let uncommitted: string | undefined;
    for (const [name, held] of state.held.get(digest) ?? []) {
      if (name === repository || !this.fresh(held)) continue;
      if (held.committed) return { repository: name, committed: true };
      uncommitted ??= name;
    }
    return state.policy === 'eager' && uncommitted !== undefined
      ? { repository: uncommitted, committed: false }
      : undefined;
  }

  private hold(state: RegistryState, repository: string, digest: string, committed: boolean): void {
    let repositories = state.held.get(digest);
    if (!repositories) {
      repositories = new Map();
      state.held.set(digest, repositories);
    }
    const before = repositories.get(repository);
    if (!before) this.size++;
    repositories.set(repository, {
      at: this.now(),
      committed: committed || (this.fresh(before) && before.committed),
    });
    if (this.size > PRUNE_AT) this.prune();
  }

  private prune(): void {
    for (const state of this.registries.values()) {
      for (const [digest, repositories] of state.held) {
        for (const [name, held] of repositories) {
          if (this.fresh(held)) continue;
          repositories.delete(name);
          this.size--;
        }
        if (repositories.size === 0) state.held.delete(digest);
      }
    }
  }
}

/** Waiting for another transfer ends in its failure, which is not ours; our own abort is. */
const rethrowIfAborted =
  (signal: AbortSignal | undefined) =>
  (err: unknown): void => {
    if (signal?.aborted) throw err;
  };
