import { z } from 'zod';
import { isDigest } from '../core/digest';
import { validateRepository, validateTag } from '../core/reference';
import { IMAGE_ACTION, jobDetail, RESYNC_SOURCE } from '../resync/wire';

/** Sources whose `ECR Image Action` events we act on: ECR itself, and jobs the resync enqueues. */
export const ECR_SOURCE = 'aws.ecr';

const envelope = z.object({
  // EventBridge ids are UUIDs; a longer one would not fit the status table's keys.
  id: z.string().min(1).max(128),
  source: z.string(),
  'detail-type': z.string(),
  account: z.string().optional(),
  region: z.string().optional(),
  time: z.iso.datetime({ offset: true }),
  detail: z.record(z.string(), z.unknown()),
});

const imageAction = z
  .object({
    result: z.string().optional(),
    'action-type': z.string(),
    'repository-name': z.string().min(1),
    'image-digest': z.string().optional(),
    'image-tag': z.string().optional(),
    'manifest-media-type': z.string().optional(),
    'artifact-media-type': z.string().optional(),
  })
  .extend(jobDetail.shape);

export interface ImageAction {
  action: 'PUSH' | 'DELETE';
  eventId: string;
  /** When the push happened: the event's `time`. */
  eventTime: string;
  source: string;
  account?: string;
  region?: string;
  repository: string;
  /** Absent for digest-only actions (a multi-arch child arrives with `"image-tag": ""`). */
  tag?: string;
  digest?: string;
  destinations?: string[];
}

export type ParsedEvent =
  | { kind: 'action'; action: ImageAction }
  | { kind: 'ignored'; reason: string; eventId?: string }
  /** `repository` only when it is a valid repository name (it keys the failure's status record). */
  | { kind: 'malformed'; reason: string; eventId?: string; repository?: string };

/** Text from an event, quoted for a reason: never long, so the reason's own words always show. */
export function quoteShort(text: string, max = 60): string {
  const shown = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(shown);
}

/** Why a repository-name cannot be a repository, stated first; the name is quoted short after it. */
function repositoryProblem(name: string): string | undefined {
  try {
    validateRepository(name);
    return undefined;
  } catch {
    const length = name.length > 256 ? ` is ${name.length} characters long (at most 256)` : '';
    const hash = name.includes('#') ? ' contains "#" (an unexpanded template?)' : '';
    const why = length || hash || ' is not a repository name (lowercase path components of a-z 0-9 . _ -)';
    return `repository-name${why}: ${quoteShort(name)}`;
  }
}

/** Reads one queue message body: an EventBridge event as the rule delivers it. */
export function parseEvent(body: string): ParsedEvent {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { kind: 'malformed', reason: 'message body is not JSON' };
  }
  const outer = envelope.safeParse(json);
  if (!outer.success)
    return { kind: 'malformed', reason: `not an EventBridge event: ${describeIssue(outer.error)}` };
  const e = outer.data;
  if (e.source !== ECR_SOURCE && e.source !== RESYNC_SOURCE) {
    return { kind: 'ignored', reason: `source ${quoteShort(e.source)} is not ${ECR_SOURCE}`, eventId: e.id };
  }
  if (e['detail-type'] !== IMAGE_ACTION) {
    return {
      kind: 'ignored',
      reason: `detail-type ${quoteShort(e['detail-type'])} is not an image action`,
      eventId: e.id,
    };
  }
  const name = e.detail['repository-name'];
  const nameProblem = typeof name === 'string' ? repositoryProblem(name) : undefined;
  const malformed = (reason: string): ParsedEvent => ({
    kind: 'malformed',
    reason,
    eventId: e.id,
    ...(typeof name === 'string' && !nameProblem && { repository: name }),
  });
  const inner = imageAction.safeParse(e.detail);
  if (!inner.success) return malformed(`bad detail: ${describeIssue(inner.error)}`);
  const d = inner.data;
  if (d.result !== undefined && d.result !== 'SUCCESS') {
    return { kind: 'ignored', reason: `result is ${quoteShort(d.result)}`, eventId: e.id };
  }
  const action = d['action-type'];
  if (action !== 'PUSH' && action !== 'DELETE') {
    return { kind: 'ignored', reason: `action-type ${quoteShort(action)} is not mirrored`, eventId: e.id };
  }
  if (nameProblem) return malformed(nameProblem);
  if (d['image-tag']) {
    try {
      validateTag(d['image-tag']);
    } catch {
      return malformed(
        `image-tag is not a tag (up to 128 of A-Z a-z 0-9 _ . -): ${quoteShort(d['image-tag'])}`,
      );
    }
  }
  const digest = d['image-digest'] || undefined;
  if (digest !== undefined && !isDigest(digest)) return malformed(`bad image-digest ${quoteShort(digest)}`);
  const tag = d['image-tag'] || undefined;
  if (!tag && !digest) return malformed('the event names neither image-tag nor image-digest');
  return {
    kind: 'action',
    action: {
      action,
      eventId: e.id,
      eventTime: new Date(e.time).toISOString(),
      source: e.source,
      ...(e.account !== undefined && { account: e.account }),
      ...(e.region !== undefined && { region: e.region }),
      repository: d['repository-name'],
      ...(tag !== undefined && { tag }),
      ...(digest !== undefined && { digest }),
      ...(d.destinations !== undefined && { destinations: d.destinations }),
    },
  };
}

function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  const path = issue.path.join('.');
  return path ? `${path}: ${issue.message}` : issue.message;
}
