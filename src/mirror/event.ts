import { z } from 'zod';
import { isDigest } from '../core/digest';
import { validateRepository, validateTag } from '../core/reference';

/** Sources whose `ECR Image Action` events we act on: ECR itself, and jobs the resync enqueues. */
export const ECR_SOURCE = 'aws.ecr';
export const RESYNC_SOURCE = 'ecr-mirror.resync';
export const IMAGE_ACTION = 'ECR Image Action';

const envelope = z.object({
  id: z.string().min(1),
  source: z.string(),
  'detail-type': z.string(),
  account: z.string().optional(),
  region: z.string().optional(),
  time: z.iso.datetime({ offset: true }),
  detail: z.record(z.string(), z.unknown()),
});

const imageAction = z.object({
  result: z.string().optional(),
  'action-type': z.string(),
  'repository-name': z.string().min(1),
  'image-digest': z.string().optional(),
  'image-tag': z.string().optional(),
  'manifest-media-type': z.string().optional(),
  'artifact-media-type': z.string().optional(),
  /** Resync jobs name the destinations that need the image; push events go to all. */
  destinations: z.array(z.string()).optional(),
});

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
  | { kind: 'malformed'; reason: string; eventId?: string; repository?: string };

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
    return { kind: 'ignored', reason: `source ${e.source} is not ${ECR_SOURCE}`, eventId: e.id };
  }
  if (e['detail-type'] !== IMAGE_ACTION) {
    return {
      kind: 'ignored',
      reason: `detail-type "${e['detail-type']}" is not an image action`,
      eventId: e.id,
    };
  }
  const inner = imageAction.safeParse(e.detail);
  const repositoryName =
    typeof e.detail['repository-name'] === 'string' ? e.detail['repository-name'] : undefined;
  const malformed = (reason: string): ParsedEvent => ({
    kind: 'malformed',
    reason,
    eventId: e.id,
    ...(repositoryName && { repository: repositoryName }),
  });
  if (!inner.success) return malformed(`bad detail: ${describeIssue(inner.error)}`);
  const d = inner.data;
  if (d.result !== undefined && d.result !== 'SUCCESS') {
    return { kind: 'ignored', reason: `result is ${d.result}`, eventId: e.id };
  }
  const action = d['action-type'];
  if (action !== 'PUSH' && action !== 'DELETE') {
    return { kind: 'ignored', reason: `action-type ${action} is not mirrored`, eventId: e.id };
  }
  try {
    validateRepository(d['repository-name']);
    if (d['image-tag']) validateTag(d['image-tag']);
  } catch (err) {
    return malformed((err as Error).message);
  }
  const digest = d['image-digest'] || undefined;
  if (digest !== undefined && !isDigest(digest)) return malformed(`bad image-digest "${digest}"`);
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
