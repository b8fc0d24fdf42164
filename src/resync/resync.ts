import { type Destination, type MirrorConfig, repositoryInScope } from '../config/config';
import { type Filter, matchesFilter } from '../config/patterns';
import { describeError } from '../errors';
import { mapRepository } from '../mirror/mapping';
import type { RegistryClient } from '../registry/registry';
import { createLimiter } from '../util/limit';
import {
  compare,
  type Difference,
  emptyCounts,
  jobsFor,
  type MirrorJob,
  type ResyncSummary,
  type SourceImage,
} from './plan';

/** Stop and continue in a fresh invocation when less time than this is left. */
export const TIME_MARGIN_MS = 90_000;
/** Differences returned in full (counts are always exact). */
export const MAX_DIFFERENCES = 1_000;

export interface ResyncInput {
  /** Repository patterns (globs) on top of REPOSITORY_INCLUDE/EXCLUDE. */
  repositories?: string[];
  tags?: string[];
  /** Destination ids; all by default. */
  destinations?: string[];
  dryRun?: boolean;
  /** Scheduled runs continue on their own; the CLI asks for the continuation and calls again. */
  continueInBackground?: boolean;
  continuation?: Continuation;
}

export interface Continuation {
  /** The DescribeRepositories token of the page being worked on (absent for the first page). */
  repositoriesToken?: string;
  repositoryIndex: number;
  /** The DescribeImages token inside that repository, when stopped in its middle. */
  imagesToken?: string;
  summary: ResyncSummary;
}

export interface ResyncResult {
  summary: ResyncSummary;
  differences: Difference[];
  continuation?: Continuation;
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
  record?(summary: ResyncSummary): Promise<void>;
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
  const summary: ResyncSummary = input.continuation?.summary ?? {
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
    errors: [],
  };
  summary.invocations++;
  const differences: Difference[] = [];
  const repoFilter: Filter = { include: input.repositories ?? [], exclude: [] };
  const tagFilter: Filter = { include: input.tags ?? [], exclude: [] };
  // Repositories outside the prefixes are not readable (IAM is scoped to them): never list their images.
  const wanted = (repository: string) =>
    repositoryInScope(repository, config) && matchesFilter(repository, repoFilter);
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
      if (imagesToken === undefined) summary.repositories++;
      do {
        if (deps.remainingMs() < TIME_MARGIN_MS) {
          const continuation: Continuation = {
            ...(token !== undefined && { repositoriesToken: token }),
            repositoryIndex: index,
            ...(imagesToken !== undefined && { imagesToken }),
            summary,
          };
          return suspend(input, deps, { summary, differences, continuation });
        }
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
  await deps.record?.(summary);
  return { summary, differences };
}

async function suspend(
  input: ResyncInput,
  deps: ResyncDeps,
  result: Required<ResyncResult>,
): Promise<ResyncResult> {
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
      summary.errors.push({
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

/** A destination repository's tags; undefined when the repository does not exist yet. */
async function listTags(registry: RegistryClient, repository: string): Promise<Set<string> | undefined> {
  try {
    return new Set(await registry.listTags(repository));
  } catch (err) {
    if ((err as { code?: string }).code === 'NOT_FOUND') return undefined;
    throw err;
  }
}

/** The digests a destination holds for these tags: a HEAD per tag it has (a tag it lacks needs none). */
async function destinationDigests(
  registry: RegistryClient,
  repository: string,
  images: SourceImage[],
  present: Set<string> | undefined,
): Promise<Map<string, string>> {
  if (!present) return new Map();
  const limit = createLimiter(8);
  const out = new Map<string, string>();
  await Promise.all(
    images
      .filter((i) => present.has(i.tag))
      .map((i) =>
        limit(async () => {
          const head = await registry.headManifest(repository, i.tag);
          if (head) out.set(i.tag, head.digest);
        }),
      ),
  );
  return out;
}
