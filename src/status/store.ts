import { MirrorError } from '../errors';
import type { MirrorRecord, MirrorStatus, RecordKey } from './schema';

/**
 * The port the mirror handler and the `status` command write and read results through. It knows
 * nothing of AWS: the DynamoDB adapter lives in `src/aws`, and tests may put a map behind it.
 */

export type FinalStatus = Exclude<MirrorStatus, 'in_progress'>;

/**
 * What a writer supplies. The store keeps `attempts` itself (any value given is ignored) and stamps
 * `updatedAt` with its clock when absent. Times may be any ISO-8601 form; they are stored normalised.
 * `blobsMounted` is 0 when absent.
 */
export type StatusWrite = Omit<MirrorRecord, 'attempts' | 'updatedAt' | 'blobsMounted'> & {
  attempts?: number;
  updatedAt?: string;
  blobsMounted?: number;
};

/** `begin` always writes `in_progress`, whatever status is given. */
export type BeginWrite = Omit<StatusWrite, 'status'> & { status?: 'in_progress' };
export type FinishWrite = StatusWrite & { status: FinalStatus };

export interface WriteResult {
  /** False when a newer result (later event, or a later attempt at the same event) already stands. */
  written: boolean;
  /** The current item as stored, `attempts` included, when written. */
  record?: MirrorRecord;
}

/** One attempt's outcome, kept until `expiresAt` (epoch seconds) whether or not it became current. */
export type HistoryEntry = Omit<MirrorRecord, 'attempts'> & {
  /** The item's attempt count after this write; absent when the result was superseded. */
  attempts?: number;
  /** Whether this result became the current item. */
  written: boolean;
  expiresAt: number;
};

export interface StatusQuery {
  /** Only results updated at or after this time. */
  since?: Date;
  destinationId?: string;
  limit?: number;
}

export interface StatusStore {
  /**
   * Records that an attempt started. Counts one attempt. Not written when a newer result stands: the
   * caller should then leave the work to whoever owns it. Repeating the same call (same event id and
   * startedAt) is harmless and answers `written: true` while that attempt is still in progress.
   */
  begin(record: BeginWrite): Promise<WriteResult>;
  /**
   * Records an attempt's result, unless a newer one already stands, and always appends a history
   * entry. Counts an attempt only when no `begin` of the same attempt is the current item, so
   * begin + finish counts once and a retried finish is idempotent.
   */
  finish(record: FinishWrite): Promise<WriteResult>;
  get(key: RecordKey): Promise<MirrorRecord | undefined>;
  /** Current items of a repository, all references or one (exactly, `v1` never matches `v10`). */
  queryRepository(repository: string, reference?: string): Promise<MirrorRecord[]>;
  /** Current items with a status, newest `updatedAt` first. */
  queryByStatus(status: MirrorStatus, query?: StatusQuery): Promise<MirrorRecord[]>;
  /** Attempt history of one item, newest first. */
  history(key: RecordKey, limit?: number): Promise<HistoryEntry[]>;
}

/**
 * Fixed-width UTC ISO-8601 (`2024-05-01T10:00:00.000Z`), so that stored times compare as strings:
 * EventBridge's `2024-05-01T10:00:00Z` would otherwise sort after `…T10:00:00.500Z`.
 */
export function toIsoTime(value: string | Date, field = 'time'): string {
  const date = typeof value === 'string' ? new Date(value) : value;
  if (Number.isNaN(date.getTime())) {
    throw new MirrorError('INVALID_ARGUMENT', `${field} "${String(value)}" is not an ISO-8601 time`);
  }
  return date.toISOString();
}
