import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { MirrorError } from '../errors';
import type { Difference, MirrorJob, ResyncSummary } from './plan';

/**
 * The resync's wire formats, built and parsed here and nowhere else:
 * - the jobs it puts on the mirror queue: `ECR Image Action` events from `ecr-mirror.resync`, naming
 *   the destinations that need the image, so they take exactly the path a push takes;
 * - the payload of a resync invocation (the schedule's `{}`, the CLI's options, or a continuation)
 *   and what an invocation answers.
 */

export const RESYNC_SOURCE = 'ecr-mirror.resync';
export const IMAGE_ACTION = 'ECR Image Action';

/** A mirror job as a queue message body. */
export function jobEvent(job: MirrorJob, account: string, region: string, now = new Date()): string {
  return JSON.stringify({
    version: '0',
    id: randomUUID(),
    'detail-type': IMAGE_ACTION,
    source: RESYNC_SOURCE,
    account,
    region,
    time: now.toISOString(),
    resources: [],
    detail: {
      result: 'SUCCESS',
      'action-type': 'PUSH',
      'repository-name': job.repository,
      'image-tag': job.tag,
      'image-digest': job.digest,
      destinations: job.destinations,
    },
  });
}

/** What a job adds to an image action's detail: the destinations it is for (push events go to all). */
export const jobDetail = z.object({
  destinations: z.array(z.string().min(1).max(64)).max(100).optional(),
});

/**
 * Where a paused run picks up: pagination tokens and the run it belongs to, nothing more. The
 * running summary stays in the status table under the run's key, so the continuation stays small
 * however far the run has gone (an asynchronous invocation's payload is limited to 1 MB).
 */
export interface Continuation {
  runId: string;
  /** With runId, the summary's key in the table. */
  startedAt: string;
  /** The DescribeRepositories token of the page being worked on (absent for the first page). */
  repositoriesToken?: string;
  repositoryIndex: number;
  /** The DescribeImages token inside that repository, when stopped in its middle. */
  imagesToken?: string;
}

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

export interface ResyncResult {
  summary: ResyncSummary;
  differences: Difference[];
  continuation?: Continuation;
}

const token = z.string().min(1).max(4096);
const inputSchema = z.object({
  repositories: z.array(z.string().min(1)).optional(),
  tags: z.array(z.string().min(1)).optional(),
  destinations: z.array(z.string().min(1)).optional(),
  dryRun: z.boolean().optional(),
  continueInBackground: z.boolean().optional(),
  continuation: z
    .object({
      runId: z.string().min(1).max(128),
      startedAt: z.string().min(1).max(64),
      repositoriesToken: token.optional(),
      repositoryIndex: z.number().int().min(0),
      imagesToken: token.optional(),
    })
    .optional(),
});

/** Reads the invocation payload: `{}` from the schedule, options from `ecr-mirror resync`. */
export function parseResyncInput(event: unknown): ResyncInput {
  // A scheduled rule may deliver its own envelope; only our fields matter.
  const result = inputSchema.safeParse(event ?? {});
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new MirrorError(
      'INVALID_ARGUMENT',
      `resync input ${issue.path.join('.') || ''}: ${issue.message}`.trim(),
    );
  }
  return result.data as ResyncInput;
}

/** The payload that invokes a resync, as the CLI and a paused run send it. */
export function resyncPayload(input: ResyncInput): Uint8Array {
  return Buffer.from(JSON.stringify(input));
}
