/**
 * The pure part of a resync: which tags a destination lacks or holds at another digest, and the
 * jobs that put them right (one per image, naming the destinations that need it).
 */
export interface SourceImage {
  repository: string;
  tag: string;
  digest: string;
}

export interface Difference extends SourceImage {
  destinationId: string;
  destinationRepository: string;
  reason: 'missing' | 'different';
  destinationDigest?: string;
}

export interface DestinationCounts {
  checked: number;
  inSync: number;
  missing: number;
  different: number;
  enqueued: number;
}

export interface ResyncSummary {
  runId: string;
  startedAt: string;
  finishedAt?: string;
  dryRun: boolean;
  repositories: number;
  /** Source tags looked at, after filters. */
  checked: number;
  /** Tags every destination already holds at the source's digest. */
  inSync: number;
  /** Mirror jobs sent to the queue (one per image, for all destinations that need it). */
  enqueued: number;
  destinations: Record<string, DestinationCounts>;
  /** Lambda invocations this run took (a long run continues in fresh ones). */
  invocations: number;
  complete: boolean;
  /** Errors met, all counted; the first MAX_ERRORS kept, each message cut to a few hundred characters. */
  errorCount: number;
  errors: ResyncError[];
}

export interface ResyncError {
  repository: string;
  destinationId?: string;
  message: string;
}

/** Errors kept in a summary: a destination that refuses every repository must not grow it without bound. */
export const MAX_ERRORS = 20;
const MAX_ERROR_MESSAGE = 300;

/** Counts an error, and keeps it while fewer than MAX_ERRORS are kept. */
export function addError(summary: ResyncSummary, error: ResyncError): void {
  summary.errorCount++;
  if (summary.errors.length >= MAX_ERRORS) return;
  const message =
    error.message.length > MAX_ERROR_MESSAGE
      ? `${error.message.slice(0, MAX_ERROR_MESSAGE)}…`
      : error.message;
  summary.errors.push({ ...error, message });
}

export interface MirrorJob extends SourceImage {
  destinations: string[];
}

export const emptyCounts = (): DestinationCounts => ({
  checked: 0,
  inSync: 0,
  missing: 0,
  different: 0,
  enqueued: 0,
});

/** Groups differences into jobs: one per source image, listing the destinations it is missing from. */
export function jobsFor(differences: readonly Difference[]): MirrorJob[] {
  const jobs = new Map<string, MirrorJob>();
  for (const d of differences) {
    const key = `${d.repository}:${d.tag}@${d.digest}`;
    let job = jobs.get(key);
    if (!job) {
      job = { repository: d.repository, tag: d.tag, digest: d.digest, destinations: [] };
      jobs.set(key, job);
    }
    if (!job.destinations.includes(d.destinationId)) job.destinations.push(d.destinationId);
  }
  return [...jobs.values()];
}

/** Compares one destination's digest for a tag with the source's. */
export function compare(
  image: SourceImage,
  destinationId: string,
  destinationRepository: string,
  destinationDigest: string | undefined,
): Difference | undefined {
  if (destinationDigest === image.digest) return undefined;
  return {
    ...image,
    destinationId,
    destinationRepository,
    reason: destinationDigest === undefined ? 'missing' : 'different',
    ...(destinationDigest !== undefined && { destinationDigest }),
  };
}
