import { validateRepository, validateTag } from '../core/reference';
import { MirrorError } from '../errors';
import { MIRROR_STATUSES, type MirrorRecord, type MirrorStatus } from '../status/schema';
import type { StatusStore } from '../status/store';
import { cliStatusStore } from '../wiring/cli';
import { DEFAULT_TABLE } from './defaults';
import { parseDuration } from './duration';
import { cliRegion, withRegionHint } from './region';
import { renderTable, summaryLine } from './status-table';

export interface StatusCommandOptions {
  failed?: boolean;
  status?: string;
  since?: string;
  destination?: string;
  json?: boolean;
  table?: string;
  region?: string;
  limit?: string;
}

/** `REPO[:TAG]` or `REPO@sha256:…`: a repository, and optionally one tag or digest. */
export function parseTarget(target: string): { repository: string; reference?: string } {
  const at = target.indexOf('@');
  if (at >= 0) return { repository: target.slice(0, at), reference: target.slice(at + 1) };
  const colon = target.lastIndexOf(':');
  if (colon < 0) return { repository: target };
  const repository = target.slice(0, colon);
  const reference = target.slice(colon + 1);
  validateTag(reference);
  return { repository, reference };
}

/**
 * Reads the status table with key queries only: by repository (and tag), or by status through the
 * `byStatus` index, newest first. No scans, so it stays fast and cheap on a large table.
 */
export async function queryStatus(
  store: StatusStore,
  target: string | undefined,
  opts: StatusCommandOptions,
  now = Date.now(),
): Promise<MirrorRecord[]> {
  const since = opts.since === undefined ? undefined : new Date(now - parseDuration(opts.since, '--since'));
  const limit = opts.limit === undefined ? 100 : Number(opts.limit);
  if (!Number.isInteger(limit) || limit < 1)
    throw new MirrorError('INVALID_ARGUMENT', '--limit must be a positive whole number');
  let statuses: readonly MirrorStatus[] | undefined;
  if (opts.status !== undefined) {
    if (!(MIRROR_STATUSES as readonly string[]).includes(opts.status)) {
      throw new MirrorError('INVALID_ARGUMENT', `--status must be one of ${MIRROR_STATUSES.join(', ')}`);
    }
    statuses = [opts.status as MirrorStatus];
  } else if (opts.failed) {
    statuses = ['failed', 'conflict'];
  }

  let records: MirrorRecord[];
  if (target !== undefined) {
    const { repository, reference } = parseTarget(target);
    validateRepository(repository);
    records = (await store.queryRepository(repository, reference)).filter(
      (r) =>
        (!statuses || statuses.includes(r.status)) &&
        (!opts.destination || r.destinationId === opts.destination) &&
        (!since || Date.parse(r.updatedAt) >= since.getTime()),
    );
  } else {
    // Without a repository: recent results of every status (the last day unless --since says otherwise).
    const window = since ?? new Date(now - 86_400_000);
    const lists = await Promise.all(
      (statuses ?? MIRROR_STATUSES).map((s) =>
        store.queryByStatus(s, {
          since: window,
          limit,
          ...(opts.destination && { destinationId: opts.destination }),
        }),
      ),
    );
    records = lists.flat();
  }
  return records.sort((x, y) => y.updatedAt.localeCompare(x.updatedAt)).slice(0, limit);
}

export async function runStatus(target: string | undefined, opts: StatusCommandOptions): Promise<void> {
  const table = opts.table ?? process.env.STATUS_TABLE ?? DEFAULT_TABLE;
  const { store, close } = await cliStatusStore(table, cliRegion(opts.region));
  try {
    const records = await withRegionHint(() => queryStatus(store, target, opts));
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(records, null, 2)}\n`);
      return;
    }
    if (records.length > 0) process.stdout.write(`${renderTable(records, process.stdout.isTTY === true)}\n`);
    process.stdout.write(`${summaryLine(records)}\n`);
  } finally {
    close();
  }
}
