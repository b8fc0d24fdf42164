import { type Destination, isOwnOutput, repositoryInScope } from '../config/config';
import { mapRepository } from '../config/mapping';
import { matchesFilter } from '../config/patterns';
import { copyImage } from '../copy/copy-image';
import type { Reference } from '../core/reference';
import { deniedRecordMessage, parseDenial } from '../doctor/denied';
import { MirrorError, SourceNotFoundError } from '../errors';
import type { MirrorRecord } from '../status/schema';
import type { FinishWrite } from '../status/store';
import type { ImageAction } from './event';
import type { DestinationClients, MirrorRuntime } from './ports';

export interface DestinationOutcome {
  destination: Destination;
  record: MirrorRecord;
  /** Set for failures and conflicts. */
  error?: MirrorError;
  /** False when a newer result already stood in the status table. */
  written: boolean;
  /**
   * Whether `record` is announced (an `Image …` event): what this attempt wrote, or the standing
   * record after correcting it. A result that lost to a newer one is not: its writer announced that.
   */
  announce: boolean;
}

export type ActionResult =
  | { kind: 'filtered'; reason: string }
  /** A push into a repository the mirror itself writes: mirroring it would feed on its own output. */
  | { kind: 'own-output'; reason: string }
  | { kind: 'done'; outcomes: DestinationOutcome[] };

export interface MirrorOptions {
  /** Cancels the work (the record's deadline); the copy stops and the outcome is a TIMEOUT failure. */
  signal?: AbortSignal;
}

/**
 * Any error as a MirrorError. One that is not ours is a bug (a TypeError, say): INTERNAL, not
 * retryable, so it reaches the dead-letter queue with its message instead of being retried for hours.
 */
export function asMirrorError(err: unknown): MirrorError {
  if (err instanceof MirrorError) return err;
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return new MirrorError('INTERNAL', message, { retryable: false, cause: err });
}

/** Why an action is not for us, or undefined when it is. */
export function filterReason(action: ImageAction, rt: MirrorRuntime): string | undefined {
  const c = rt.config;
  if (action.action === 'DELETE' && !c.syncDeletes) return 'deletion sync is off (SYNC_DELETES)';
  if (
    action.account !== undefined &&
    action.source !== 'ecr-mirror.resync' &&
    action.account !== c.sourceAccountId
  ) {
    return `account ${action.account} is not the source account`;
  }
  if (action.region !== undefined && action.region !== c.sourceRegion)
    return `region ${action.region} is not the source region`;
  if (!repositoryInScope(action.repository, c)) return `repository ${action.repository} is filtered out`;
  if (action.tag !== undefined && !matchesFilter(action.tag, c.tags))
    return `tag ${action.tag} is filtered out`;
  if (action.tag === undefined && action.action === 'PUSH' && !c.mirrorUntagged) {
    return 'untagged pushes are not mirrored (MIRROR_UNTAGGED)';
  }
  return undefined;
}

/**
 * Mirrors one push (or deletion) into every destination it is for. Never throws for a destination's
 * failure: each outcome is recorded in the status table and returned for the caller to decide on
 * retrying.
 */
export async function mirrorAction(
  action: ImageAction,
  rt: MirrorRuntime,
  options: MirrorOptions = {},
): Promise<ActionResult> {
  if (isOwnOutput(action.repository, rt.config)) {
    return {
      kind: 'own-output',
      reason: `repository ${action.repository} is where the mirror writes in the source registry`,
    };
  }
  const reason = filterReason(action, rt);
  if (reason) return { kind: 'filtered', reason };
  const wanted = action.destinations ? new Set(action.destinations) : undefined;
  const destinations = rt.config.destinations.filter((d) => !wanted || wanted.has(d.id));
  const outcomes = await Promise.all(destinations.map((d) => mirrorTo(action, d, rt, options)));
  return { kind: 'done', outcomes };
}

async function mirrorTo(
  action: ImageAction,
  destination: Destination,
  rt: MirrorRuntime,
  options: MirrorOptions,
): Promise<DestinationOutcome> {
  const started = Date.now();
  const startedAt = new Date(started).toISOString();
  const reference = action.tag ?? action.digest!;
  let destinationRepository = action.repository;
  const base = {
    sourceRepository: action.repository,
    reference,
    destinationId: destination.id,
    ...(action.tag !== undefined && { tag: action.tag }),
    eventId: action.eventId,
    eventTime: action.eventTime,
    startedAt,
    bytes: 0,
    blobsCopied: 0,
    blobsMounted: 0,
    blobsSkipped: 0,
    durationMs: 0,
  };

  let result: FinishWrite;
  let error: MirrorError | undefined;
  try {
    destinationRepository = mapRepository(
      action.repository,
      destination.repository,
      rt.config.sourceAccountId,
    );
    const begun = await rt.store.begin({ ...base, destinationRepository });
    if (!begun.written) {
      // A later event (or a later attempt at this one) already stands: it mirrored the tag as it is now.
      return finish(rt, destination, {
        ...base,
        destinationRepository,
        status: 'skipped',
        lastErrorMessage: 'superseded: a newer event for this tag was already handled',
      });
    }
    const dest = rt.destination(destination);
    await dest.connect();
    if (action.action === 'DELETE') {
      result = {
        ...base,
        destinationRepository,
        ...(await deleteAt(action, dest, destinationRepository, rt)),
      };
    } else {
      result = {
        ...base,
        destinationRepository,
        ...(await pushTo(action, destination, dest, destinationRepository, rt, options)),
      };
    }
  } catch (err) {
    error = asMirrorError(err);
    const sourceGone = err instanceof SourceNotFoundError;
    result = {
      ...base,
      destinationRepository,
      // A tag deleted at the source since the push: nothing to mirror any more.
      status: error.code === 'TAG_IMMUTABLE' ? 'conflict' : sourceGone ? 'skipped' : 'failed',
      lastErrorCode: error.code,
      lastErrorMessage:
        error.code === 'DENIED'
          ? deniedMessage(error.message, rt, action, destination, destinationRepository)
          : error.message,
    };
    if (sourceGone) error = undefined;
    if (error?.code === 'TAG_IMMUTABLE' && action.tag) {
      Object.assign(
        result,
        await conflictingDigests(rt, destination, action, destinationRepository, action.tag),
      );
    }
  }
  result.durationMs = Date.now() - started;
  return finish(rt, destination, result, error);
}

/** A refusal's record message: which action on which resource, and where the fix is. */
function deniedMessage(
  message: string,
  rt: MirrorRuntime,
  action: ImageAction,
  destination: Destination,
  destinationRepository: string,
): string {
  const source = {
    accountId: rt.config.sourceAccountId,
    region: rt.config.sourceRegion,
    repository: action.repository,
  };
  if (destination.accountId !== undefined && destination.region !== undefined) {
    const { accountId, region } = destination;
    return deniedRecordMessage(message, {
      source,
      destination: { accountId, region, repository: destinationRepository },
    });
  }
  // Not ECR: AWS's sentence, if any, is the source's refusal; otherwise the registry refused the
  // credentials of the destination's secret.
  if (parseDenial(message)) return deniedRecordMessage(message, { source, destination: source });
  return `${destination.host} refused it for the credentials in ${destination.kind === 'registry' ? destination.credentials.secretArn : 'the destination'}; run \`ecr-mirror doctor\` for the fix: ${message}`;
}

type PushResult = Pick<
  FinishWrite,
  'status' | 'sourceDigest' | 'destinationDigest' | 'bytes' | 'blobsCopied' | 'blobsMounted' | 'blobsSkipped'
>;

async function pushTo(
  action: ImageAction,
  destination: Destination,
  dest: DestinationClients,
  repository: string,
  rt: MirrorRuntime,
  options: MirrorOptions,
): Promise<PushResult> {
  const ensure = () =>
    dest.repositories.ensure(repository, destination.repositorySettings, rt.config.createRepositories);
  await ensure();
  const at = (registry: string, name: string): Reference => ({
    registry,
    repository: name,
    // The tag is resolved now, not taken from the event: a late, older event copies what the tag
    // names today, so the destination never moves back to an older digest.
    ...(action.tag !== undefined ? { tag: action.tag } : { digest: action.digest! }),
  });
  const copy = () =>
    copyImage(rt.source, at(rt.sourceHost, action.repository), dest.registry, at(dest.host, repository), {
      referrers: rt.config.referrers,
      concurrency: rt.config.blobConcurrency,
      ...(rt.blobs && { blobs: rt.blobs }),
      ...(options.signal && { signal: options.signal }),
    });
  let summary: Awaited<ReturnType<typeof copy>>;
  try {
    summary = await copy();
  } catch (err) {
    // A destination repository deleted since we last saw it answers 404 to the push: forget it, make
    // sure of it again (which creates it), and copy once more.
    if (!(err instanceof MirrorError) || err.code !== 'NOT_FOUND' || err instanceof SourceNotFoundError) {
      throw err;
    }
    dest.repositories.forget(repository);
    rt.blobs?.forgetRepository(dest.host, repository);
    if ((await ensure()) !== 'created') throw err;
    summary = await copy();
  }
  return {
    status: summary.upToDate ? 'skipped' : 'succeeded',
    sourceDigest: summary.digest,
    destinationDigest: summary.digest,
    bytes: summary.bytes,
    blobsCopied: summary.blobs.copied,
    blobsMounted: summary.blobs.mounted,
    blobsSkipped: summary.blobs.skipped,
  };
}

/** Which digests disagree, for a conflict record: what the source tag names, what the destination keeps. */
async function conflictingDigests(
  rt: MirrorRuntime,
  destination: Destination,
  action: ImageAction,
  destinationRepository: string,
  tag: string,
): Promise<Pick<FinishWrite, 'sourceDigest' | 'destinationDigest'>> {
  try {
    const [source, kept] = await Promise.all([
      rt.source.headManifest(action.repository, tag),
      rt.destination(destination).registry.headManifest(destinationRepository, tag),
    ]);
    return {
      ...(source && { sourceDigest: source.digest }),
      ...(kept && { destinationDigest: kept.digest }),
    };
  } catch {
    return {}; // the conflict itself is what matters; the digests are a courtesy
  }
}

async function finish(
  rt: MirrorRuntime,
  destination: Destination,
  result: FinishWrite,
  error?: MirrorError,
): Promise<DestinationOutcome> {
  const { written, record } = await rt.store.finish(result);
  if (written && record) return { destination, record, written, announce: true, ...(error && { error }) };
  const standing = written ? undefined : await settleStanding(rt, destination, result);
  return {
    destination,
    record: standing ??
      record ?? {
        ...result,
        blobsMounted: result.blobsMounted ?? 0,
        attempts: 0,
        updatedAt: new Date().toISOString(),
      },
    written,
    announce: written || standing?.lastErrorCode === CORRECTED,
    ...(error && { error }),
  };
}

const CORRECTED = 'CORRECTED';

/**
 * Our result lost to a newer one: that record stands. It must name the digest the destination tag
 * holds, whoever wrote the tag last (a slower worker converging on a source that moved again, say).
 * So the destination is checked: when its tag holds another digest than the standing final record
 * says, the record is corrected in place (the same attempt's item, so no newer result is overwritten).
 */
async function settleStanding(
  rt: MirrorRuntime,
  destination: Destination,
  result: FinishWrite,
): Promise<MirrorRecord | undefined> {
  try {
    const standing = await rt.store.get(result);
    if (!standing || result.tag === undefined) return standing;
    const { attempts: _, updatedAt: __, status, ...fields } = standing;
    // Failures and conflicts name no written digest; one still in progress will check for itself.
    if (status !== 'succeeded' && status !== 'skipped') return standing;
    const held = await rt
      .destination(destination)
      .registry.headManifest(standing.destinationRepository, result.tag);
    if (!held || held.digest === standing.destinationDigest) return standing;
    const corrected = await rt.store.finish({
      ...fields,
      status,
      destinationDigest: held.digest,
      lastErrorCode: CORRECTED,
      lastErrorMessage: `the destination tag holds ${held.digest}, written by a later copy of the source tag`,
    });
    return corrected.record ?? standing;
  } catch {
    return undefined; // our own result is still recorded in the history; the check is a courtesy
  }
}

/**
 * Deletion sync: delete at the destination what was deleted at the source, unless the source has it
 * again (a push after the delete, its event arriving first).
 */
async function deleteAt(
  action: ImageAction,
  dest: DestinationClients,
  repository: string,
  rt: MirrorRuntime,
): Promise<Pick<FinishWrite, 'status' | 'lastErrorMessage' | 'sourceDigest'>> {
  const reference = action.tag ?? action.digest!;
  const present = await rt.source.headManifest(action.repository, reference);
  if (present) {
    return {
      status: 'skipped',
      sourceDigest: present.digest,
      lastErrorMessage: `the source has ${reference} again; not deleted`,
    };
  }
  await dest.repositories.deleteImage(
    repository,
    action.tag ? { tag: action.tag } : { digest: action.digest! },
  );
  return { status: 'deleted', ...(action.digest && { sourceDigest: action.digest }) };
}
