/**
 * What an access refusal says, read from its text: who was refused which action on which resource.
 * Pure, so the mirror Lambda uses it too: a `DENIED` status record names the action and the resource
 * and points at `ecr-mirror doctor`, which knows the fix.
 */

export interface Denial {
  /** The refused identity, as AWS names it (`arn:aws:sts::…:assumed-role/<role>/<session>`). */
  principal?: string;
  /** `ecr:InitiateLayerUpload`, `sts:AssumeRole`, … */
  action?: string;
  /** The resource ARN, or `*`. */
  resource?: string;
  /** Which policy lacks the permission, when AWS said so. */
  missingIn?: 'identity' | 'resource' | 'explicit-deny' | 'boundary' | 'organization';
}

// AWS's wording, the same across services and over the registry API (a 403 DENIED from ECR):
// "User: arn:… is not authorized to perform: ecr:X on resource: arn:… because no identity-based
// policy allows the ecr:X action".
const AWS_DENIAL =
  /(?:(?:User|Principal): (\S+) )?is not authorized to perform: ([\w-]+:[\w*]+)(?: on resource: (\S+?))?(?:[ ,;)]|$)/;

/** Reads AWS's standard denial sentence out of any message; undefined when there is none. */
export function parseDenial(message: string): Denial | undefined {
  const m = AWS_DENIAL.exec(message);
  if (!m) return undefined;
  const denial: Denial = { action: m[2]! };
  if (m[1]) denial.principal = m[1];
  if (m[3]) denial.resource = m[3];
  const rest = message.slice(m.index + m[0].length);
  if (/explicit deny/i.test(rest)) denial.missingIn = 'explicit-deny';
  else if (/no identity-based policy allows/i.test(rest)) denial.missingIn = 'identity';
  else if (/no resource-based policy allows/i.test(rest)) denial.missingIn = 'resource';
  else if (/permissions boundary/i.test(rest)) denial.missingIn = 'boundary';
  else if (/service control policy|resource control policy/i.test(rest)) denial.missingIn = 'organization';
  return denial;
}

/** The registry operation in one of our registry error messages, and the ECR action it needs. */
const REGISTRY_ACTIONS: { pattern: RegExp; action: string; write: boolean }[] = [
  { pattern: /^(?:HEAD|GET) manifest ([^\s:@]+)/, action: 'ecr:BatchGetImage', write: false },
  { pattern: /^PUT manifest ([^\s:@]+)/, action: 'ecr:PutImage', write: true },
  { pattern: /^DELETE manifest ([^\s:@]+)/, action: 'ecr:BatchDeleteImage', write: true },
  { pattern: /^HEAD blob ([^\s@]+)/, action: 'ecr:BatchCheckLayerAvailability', write: false },
  { pattern: /^GET blob ([^\s@]+)/, action: 'ecr:GetDownloadUrlForLayer', write: false },
  { pattern: /^start upload of \S+ to (\S+?):/, action: 'ecr:InitiateLayerUpload', write: true },
  { pattern: /^upload (?:chunk at \d+ )?of \S+ to (\S+?):/, action: 'ecr:UploadLayerPart', write: true },
  { pattern: /^complete upload of \S+ to (\S+?):/, action: 'ecr:CompleteLayerUpload', write: true },
  { pattern: /^GET tags (\S+?):/, action: 'ecr:ListImages', write: false },
];

import { partitionOf } from '../core/ecr-host';

export { partitionOf };

export interface RepositorySide {
  accountId: string;
  region: string;
  repository: string;
}

export function repositoryArn(side: RepositorySide): string {
  return `arn:${partitionOf(side.region)}:ecr:${side.region}:${side.accountId}:repository/${side.repository}`;
}

/** Repositories of an account in any region whose names match `pattern` (`mirror/*`), as IAM statements name them. */
export function repositoriesArn(accountId: string, region: string, pattern: string): string {
  return `arn:${partitionOf(region)}:ecr:*:${accountId}:repository/${pattern}`;
}

/**
 * The refusal behind a mirror failure: AWS's own sentence when the message carries it (ECR's answers
 * do), else inferred from the registry operation that failed and the two repositories of the copy.
 */
export function denialOf(
  message: string,
  sides: { source: RepositorySide; destination: RepositorySide },
): Denial | undefined {
  const parsed = parseDenial(message);
  // GetAuthorizationToken is the one action not scoped to a resource: its resource is always `*`.
  const token = /^ecr:GetAuthorizationToken on resource: \* refused/.test(message);
  if (parsed) return token && !parsed.resource ? { ...parsed, resource: '*' } : parsed;
  if (token) return { action: 'ecr:GetAuthorizationToken', resource: '*' };
  for (const { pattern, action, write } of REGISTRY_ACTIONS) {
    const m = pattern.exec(message);
    if (!m) continue;
    const repository = m[1]!;
    const { source, destination } = sides;
    // Writes go to the destination only; a read names the side whose repository it names, or both.
    let resource: string;
    if (write || (repository === destination.repository && repository !== source.repository)) {
      resource = repositoryArn(destination);
    } else if (repository === source.repository && repository !== destination.repository) {
      resource = repositoryArn(source);
    } else {
      resource = `${repositoryArn(source)} or ${repositoryArn(destination)}`;
    }
    return { action, resource };
  }
  return undefined;
}

/**
 * The status record's message for a refusal: what was refused first (the table shows the start of
 * it), then where to get the fix, then the original message.
 */
export function deniedRecordMessage(
  message: string,
  sides: { source: RepositorySide; destination: RepositorySide },
): string {
  const denial = denialOf(message, sides);
  if (!denial?.action) return `access denied; run \`ecr-mirror doctor\` for the fix: ${message}`;
  const who = denial.principal ? ` for ${denial.principal}` : '';
  const on = denial.resource ? ` on ${denial.resource}` : '';
  return `${denial.action}${on} refused${who}; run \`ecr-mirror doctor\` for the fix: ${message}`;
}
