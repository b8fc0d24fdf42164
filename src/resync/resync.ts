import { type Destination, isOwnOutput, type MirrorConfig, repositoryInScope } from '../config/config';
import { mapRepository } from '../config/mapping';
import { type Filter, matchesFilter } from '../config/patterns';
import { describeError, MirrorError } from '../errors';
import type { RegistryClient } from '../registry/registry';
import { destinationDigests, listTags } from './destination';
import {
  addError,
  compare,
  type Difference,
  emptyCounts,
  jobsFor,
  type MirrorJob,
  type ResyncSummary,
  type SourceImage,
} from './plan';
import type { Continuation, ResyncInput, ResyncResult } from './wire';

/** Stop and continue in a fresh invocation when less time than this is left. */
export const TIME_MARGIN_MS = 90_000;
/** Differences returned in full (counts are always exact). */
export const MAX_DIFFERENCES = 1_000;

/** The running summary of each run, by run id (in the status table when deployed). */
export interface ResyncLog {
  save(summary: ResyncSummary): Promise<void>;
  load(runId: string, startedAt: string): Promise<ResyncSummary | undefined>;
}

export interface ResyncDeps {
  config: MirrorConfig;
  inventory: {
    repositories(nextToken?: string): Promise<{ repositories: string[]; nextToken?: string }>;
    images(
      repository: string,
      nextToken?: string,
    ): Promise<{ images: { digest: string; tags: string[] }[]; nextToken?: string }>;
  };
  destinationRegistry(d: Destination): RegistryClient;
  enqueue?(jobs: MirrorJob[]): Promise<number>;
  remainingMs(): number;
  continueInBackground?(input: ResyncInput): Promise<void>;
  /** Keeps the summary between invocations; without it a run cannot continue. */
  log?: ResyncLog;
  newRunId(): string;
  now(): Date;
}

/**
 * Reconciles what exists: every tagged image of the selected source repositories against every
 * destination, enqueuing mirror jobs for what is missing or different (nothing, in a dry run). Watches
 * the time left and stops at a page boundary with a continuation, so any number of images fits.
 */
export async function runResync(input: ResyncInput, deps: ResyncDeps): Promise<ResyncResult> {
  const { config } = deps;
  const destinations = config.destinations.filter(
    (d) => !input.destinations || input.destinations.includes(d.id),
  );
  const summary: ResyncSummary = input.continuation
    ? await resume(input.continuation, deps)
    : {
        runId: deps.newRunId(),
        startedAt: deps.now().toISOString(),
        dryRun: input.dryRun === true,
        repositories: 0,
        checked: 0,
        inSync: 0,
        enqueued: 0,
        destinations: Object.fromEntries(destinations.map((d) => [d.id, emptyCounts()])),
        invocations: 0,
        complete: false,
        errorCount: 0,
        errors: [],
      };
  summary.invocations++;
  const differences: Difference[] = [];
  const repoFilter: Filter = { include: input.repositories ?? [], exclude: [] };
  const tagFilter: Filter = { include: input.tags ?? [], exclude: [] };
  // Repositories outside the prefixes are not readable (IAM is scoped to them): never list their images.
  // Nor the mirror's own output in the source registry: its pushes are never mirrored either.
  const wanted = (repository: string) =>
    repositoryInScope(repository, config) &&
    matchesFilter(repository, repoFilter) &&
    !isOwnOutput(repository, config);
  const wantedTag = (tag: string) => matchesFilter(tag, config.tags) && matchesFilter(tag, tagFilter);

  // Tag lists of destination repositories, read once per invocation however many pages a repository has.
  const tagLists = new Map<string, Promise<Set<string> | undefined>>();
  let token = input.continuation?.repositoriesToken;
  let index = input.continuation?.repositoryIndex ?? 0;
  let imagesToken = input.continuation?.imagesToken;

  for (;;) {
    const page = await deps.inventory.repositories(token);
    for (; index < page.repositories.length; index++) {
      const repository = page.repositories[index]!;
      if (!wanted(repository)) continue;
      do {
        if (deps.remainingMs() < TIME_MARGIN_MS) {
          const continuation: Continuation = {
            runId: summary.runId,
            startedAt: summary.startedAt,
            ...(token !== undefined && { repositoriesToken: token }),
            repositoryIndex: index,
            ...(imagesToken !== undefined && { imagesToken }),
          };
          return suspend(input, deps, { summary, differences, continuation });
        }
        // Counted with its first page, after the pause check: a run paused before a repository's
        // first page counts it when it resumes there, not twice.
        if (imagesToken === undefined) summary.repositories++;
        const images = await deps.inventory.images(repository, imagesToken);
        const tagged: SourceImage[] = images.images.flatMap((img) =>
          img.tags.filter(wantedTag).map((tag) => ({ repository, tag, digest: img.digest })),
        );
        await check(tagged, destinations, deps, summary, differences, tagLists);
        imagesToken = images.nextToken;
      } while (imagesToken !== undefined);
    }
    index = 0;
    if (page.nextToken === undefined) break;
    token = page.nextToken;
  }

  summary.complete = true;
  summary.finishedAt = deps.now().toISOString();
  await deps.log?.save(summary);
  return { summary, differences };
}

async function resume(continuation: Continuation, deps: ResyncDeps): Promise<ResyncSummary> {
  const summary = await deps.log?.load(continuation.runId, continuation.startedAt);
  if (!summary) {
    throw new MirrorError(
      'INVALID_ARGUMENT',
      `resync run ${continuation.runId} has no summary to continue from (expired, or another table?)`,
    );
  }
  return summary;
}

async function suspend(
  input: ResyncInput,
  deps: ResyncDeps,
  result: Required<ResyncResult>,
): Promise<ResyncResult> {
  if (!deps.log) {
    throw new MirrorError('INVALID_CONFIG', 'STATUS_TABLE: a resync that pauses keeps its summary there');
  }
  await deps.log.save(result.summary);
  if (input.continueInBackground !== false && deps.continueInBackground) {
    await deps.continueInBackground({ ...input, continuation: result.continuation });
  }
  return result;
}

/** Compares one page of source tags with every destination, and enqueues what is missing or different. */
async function check(
  images: SourceImage[],
  destinations: Destination[],
  deps: ResyncDeps,
  summary: ResyncSummary,
  differences: Difference[],
  tagLists: Map<string, Promise<Set<string> | undefined>>,
): Promise<void> {
  if (images.length === 0) return;
  summary.checked += images.length;
  const found: Difference[] = [];
  const failedDestinations = new Set<string>();
  for (const d of destinations) {
    const counts = summary.destinations[d.id]!;
    try {
      const repository = mapRepository(images[0]!.repository, d.repository, deps.config.sourceAccountId);
      const registry = deps.destinationRegistry(d);
      const key = `${d.id}/${repository}`;
      let tags = tagLists.get(key);
      if (!tags) {
        tags = listTags(registry, repository);
        tagLists.set(key, tags);
      }
      const digests = await destinationDigests(registry, repository, images, await tags);
      for (const image of images) {
        counts.checked++;
        const diff = compare(image, d.id, repository, digests.get(image.tag));
        if (!diff) counts.inSync++;
        else {
          found.push(diff);
          if (diff.reason === 'missing') counts.missing++;
          else counts.different++;
        }
      }
    } catch (err) {
      failedDestinations.add(d.id);
      addError(summary, {
        repository: images[0]!.repository,
        destinationId: d.id,
        message: describeError(err),
      });
    }
  }
  const behind = new Set(found.map((f) => `${f.tag}@${f.digest}`));
  summary.inSync +=
    failedDestinations.size > 0 ? 0 : images.filter((i) => !behind.has(`${i.tag}@${i.digest}`)).length;
  for (const f of found) if (differences.length < MAX_DIFFERENCES) differences.push(f);
  if (summary.dryRun || found.length === 0 || !deps.enqueue) return;
  const jobs = jobsFor(found);
  summary.enqueued += await deps.enqueue(jobs);
  for (const f of found) summary.destinations[f.destinationId]!.enqueued++;
}
