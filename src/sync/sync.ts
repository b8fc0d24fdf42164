import { type Filter, matchesFilter } from '../config/patterns';
import { BlobLedger } from '../copy/blob-ledger';
import { copyImage } from '../copy/copy-image';
import type { CopyEvent } from '../copy/events';
import { abortError, MirrorError } from '../errors';
import type { RegistryClient } from '../registry/registry';
import { destinationDigests, listTags } from '../resync/destination';
import { compare, type Difference, type SourceImage } from '../resync/plan';
import { createLimiter } from '../util/limit';
import type { Inventory } from './inventory';
import { formatLocation, mapRepository, type SyncLocation, underPrefix } from './location';

/** Images copied at once, by default: chosen by `npm run bench` (README, "Benchmark"). */
export const DEFAULT_IMAGES = 4;
/** Blobs in flight at once across a run, by default. */
export const DEFAULT_SYNC_CONCURRENCY = 8;
/** Repositories compared with the destination at once, while the first ones are already copying. */
const PLANS_AT_ONCE = 8;

export interface SyncOptions {
  source: SyncLocation;
  destination: SyncLocation;
  /** Source repository names (full names) to take, and to leave. */
  repositories: Filter;
  tags: Filter;
  dryRun: boolean;
  /** Images copied at once. */
  images: number;
  /** Blob transfers in flight at once, all images together. */
  concurrency: number;
  /** Copy signatures, SBOMs and attestations with each image (and sync referrer tags at all). */
  referrers: boolean;
  signal?: AbortSignal;
  onEvent?: (event: SyncEvent) => void;
}

export interface SyncDeps {
  source: RegistryClient;
  destination: RegistryClient;
  inventory: Inventory;
  /** Makes sure a destination repository exists before anything is copied into it (ECR). */
  ensureRepository?(repository: string): Promise<void>;
  /** Throttled answers from each side so far (the process's pacing), for the summary. */
  throttled?(): { source: number; destination: number };
  blobs?: BlobLedger;
}

export type SyncEvent =
  | CopyEvent
  /** A repository compared: how many of its tags, and how many of them already in sync. */
  | { type: 'planned'; repository: string; images: number; inSync: number; toCopy: number }
  | { type: 'image-done'; repository: string; tag: string; ok: boolean };

export interface SyncDifference extends SourceImage {
  destinationRepository: string;
  reason: 'missing' | 'different';
  destinationDigest?: string;
}

export interface SyncFailure {
  repository: string;
  tag?: string;
  destinationRepository?: string;
  code: string;
  message: string;
}

/** What `ecr-mirror sync` prints (`--json`: this object). */
export interface SyncSummary {
  source: string;
  destination: string;
  dryRun: boolean;
  /** Source repositories taken (under the prefix, through the filters). */
  repositories: number;
  /** Tags compared; copied (or to copy, in a dry run), already in sync, failed. */
  images: { total: number; copied: number; inSync: number; failed: number };
  blobs: { copied: number; mounted: number; skipped: number };
  /** Blob bytes sent to the destination. */
  bytes: number;
  /** Requests sent to each registry: listing, comparing and copying. */
  requests: { source: number; destination: number };
  /** Of those, how many the registry throttled (429, 503). */
  throttled: { source: number; destination: number };
  seconds: number;
  /** Every tag the destination lacked or held at another digest: what was (or would be) copied. */
  differences: SyncDifference[];
  /** Every failure, each with its reason. */
  failures: SyncFailure[];
}

/** `sha256-<hex>`, `sha256-<hex>.sig|.att|.sbom`: where a referrer of an image is tagged. */
const REFERRER_TAG = /^sha256-([a-f0-9]{64})(?:\.(?:sig|att|sbom))?$/;
const subjectOf = (tag: string): string | undefined => {
  const m = REFERRER_TAG.exec(tag);
  return m ? `sha256:${m[1]}` : undefined;
};

const total = (counts: Readonly<Record<string, number>>): number =>
  Object.values(counts).reduce((a, b) => a + b, 0);

const failureOf = (err: unknown): { code: string; message: string } =>
  err instanceof MirrorError
    ? { code: err.code, message: err.message }
    : { code: 'INTERNAL', message: err instanceof Error ? `${err.name}: ${err.message}` : String(err) };

/**
 * A fleet copy, in one process: lists the source repositories and their tags, compares each tag's
 * digest with the destination (the resync's planner: the destination's tag list, then one manifest
 * HEAD per tag it has), and copies only what is missing or different, `images` at a time. The copies
 * share one BlobLedger (a blob moves once per destination repository, and is mounted from another
 * where it can be), one limit on blob transfers, and the process's pacing. Copying starts as soon
 * as the first repositories are compared. A failure is recorded and the rest goes on; a cancelled
 * run (Ctrl-C) stops everything and rejects.
 */
export async function runSync(o: SyncOptions, deps: SyncDeps): Promise<SyncSummary> {
  const started = performance.now();
  const before = { source: total(deps.source.counts), destination: total(deps.destination.counts) };
  const throttledBefore = deps.throttled?.() ?? { source: 0, destination: 0 };
  const { signal } = o;
  const options = signal ? { signal } : {};
  const blobs = deps.blobs ?? new BlobLedger();
  const limit = createLimiter(o.concurrency);
  const imageLimit = createLimiter(o.images);
  const planLimit = createLimiter(PLANS_AT_ONCE);
  const emit = (e: SyncEvent): void => o.onEvent?.(e);

  const summary: SyncSummary = {
    source: formatLocation(o.source),
    destination: formatLocation(o.destination),
    dryRun: o.dryRun,
    repositories: 0,
    images: { total: 0, copied: 0, inSync: 0, failed: 0 },
    blobs: { copied: 0, mounted: 0, skipped: 0 },
    bytes: 0,
    requests: { source: 0, destination: 0 },
    throttled: { source: 0, destination: 0 },
    seconds: 0,
    differences: [],
    failures: [],
  };
  const copies: Promise<void>[] = [];

  const copy = async (
    d: SyncDifference,
    covered: SyncDifference[],
    sourceTags: ReadonlySet<string>,
  ): Promise<void> => {
    const count = 1 + covered.length;
    try {
      if (signal?.aborted) throw abortError(signal, 'sync');
      const s = await copyImage(
        deps.source,
        { registry: o.source.registry, repository: d.repository, tag: d.tag, digest: d.digest },
        deps.destination,
        { registry: o.destination.registry, repository: d.destinationRepository, tag: d.tag },
        {
          blobs,
          limit,
          referrers: o.referrers,
          sourceTags,
          ...options,
          ...(o.onEvent && { onEvent: o.onEvent }),
        },
      );
      summary.blobs.copied += s.blobs.copied;
      summary.blobs.mounted += s.blobs.mounted;
      summary.blobs.skipped += s.blobs.skipped;
      summary.bytes += s.bytes;
      if (s.upToDate) summary.images.inSync += count;
      else summary.images.copied += count;
      emit({ type: 'image-done', repository: d.repository, tag: d.tag, ok: true });
    } catch (err) {
      if (signal?.aborted) throw abortError(signal, 'sync');
      summary.images.failed += count;
      const why = failureOf(err);
      for (const failed of [d, ...covered]) {
        summary.failures.push({
          repository: failed.repository,
          tag: failed.tag,
          destinationRepository: failed.destinationRepository,
          ...(failed === d
            ? why
            : { code: why.code, message: `with ${d.tag}, which failed: ${why.message}` }),
        });
      }
      emit({ type: 'image-done', repository: d.repository, tag: d.tag, ok: false });
    }
  };

  const plan = async (repository: string): Promise<void> => {
    let destinationRepository: string | undefined;
    try {
      if (signal?.aborted) throw abortError(signal, 'sync');
      destinationRepository = mapRepository(repository, o.source, o.destination);
      // The destination's tag list is asked for while the source lists its tags: one round trip less.
      const present = listTags(deps.destination, destinationRepository, options);
      present.catch(() => undefined); // awaited below, unless the source's listing fails first
      const images: SourceImage[] = [];
      // Every tag the source has, filters aside: the copies look for referrer tags among them only.
      const sourceTags = new Set<string>();
      let next: string | undefined;
      do {
        const page = await deps.inventory.images(repository, next);
        for (const image of page.images) {
          for (const tag of image.tags) {
            sourceTags.add(tag);
            if (!matchesFilter(tag, o.tags)) continue;
            // Without referrers, their tags stay behind too.
            if (!o.referrers && subjectOf(tag) !== undefined) continue;
            images.push({ repository, tag, digest: image.digest });
          }
        }
        next = page.nextToken;
      } while (next !== undefined);
      const tags = await present;
      // No such repository yet: its copies need not ask for each blob before sending it.
      if (tags === undefined) blobs.emptyRepository(deps.destination.host, destinationRepository);
      const digests = await destinationDigests(
        deps.destination,
        destinationRepository,
        images,
        tags,
        options,
      );
      const differences: SyncDifference[] = [];
      for (const image of images) {
        const diff: Difference | undefined = compare(
          image,
          'destination',
          destinationRepository!,
          digests.get(image.tag),
        );
        if (diff) {
          const { destinationId: _, ...rest } = diff;
          differences.push(rest);
        }
      }
      summary.images.total += images.length;
      summary.images.inSync += images.length - differences.length;
      summary.differences.push(...differences);
      emit({
        type: 'planned',
        repository,
        images: images.length,
        inSync: images.length - differences.length,
        toCopy: differences.length,
      });
      if (o.dryRun) {
        summary.images.copied += differences.length;
        return;
      }
      if (differences.length === 0) return;
      await deps.ensureRepository?.(destinationRepository);
      // A referrer tag (a signature, an SBOM index) whose image is copied in this run comes with it.
      const copied = new Set(differences.filter((d) => subjectOf(d.tag) === undefined).map((d) => d.digest));
      const covered = new Map<string, SyncDifference[]>();
      const own: SyncDifference[] = [];
      for (const d of differences) {
        const subject = subjectOf(d.tag);
        if (o.referrers && subject !== undefined && copied.has(subject)) {
          covered.set(subject, [...(covered.get(subject) ?? []), d]);
        } else own.push(d);
      }
      const withImage = new Set<string>();
      for (const d of own) {
        // Each image's referrer tags are counted with the first of its tags copied.
        const mine = withImage.has(d.digest) ? [] : (covered.get(d.digest) ?? []);
        withImage.add(d.digest);
        copies.push(imageLimit(() => copy(d, mine, sourceTags)));
      }
    } catch (err) {
      if (signal?.aborted) throw abortError(signal, 'sync');
      summary.failures.push({
        repository,
        ...(destinationRepository !== undefined && { destinationRepository }),
        ...failureOf(err),
      });
    }
  };

  const plans: Promise<void>[] = [];
  let token: string | undefined;
  do {
    if (signal?.aborted) throw abortError(signal, 'sync');
    const page = await deps.inventory.repositories(token);
    for (const repository of page.repositories) {
      if (!underPrefix(repository, o.source.prefix) || !matchesFilter(repository, o.repositories)) continue;
      summary.repositories++;
      plans.push(planLimit(() => plan(repository)));
    }
    token = page.nextToken;
  } while (token !== undefined);
  await settleAll(plans);
  await settleAll(copies);

  const after = deps.throttled?.() ?? { source: 0, destination: 0 };
  summary.requests = {
    source: total(deps.source.counts) - before.source,
    destination: total(deps.destination.counts) - before.destination,
  };
  summary.throttled = {
    source: after.source - throttledBefore.source,
    destination: after.destination - throttledBefore.destination,
  };
  summary.seconds = Math.round(performance.now() - started) / 1000;
  return summary;
}

/** Waits for every task (none is left running), then rejects with the first failure, if any. */
async function settleAll(tasks: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(tasks);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
