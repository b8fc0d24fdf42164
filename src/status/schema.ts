/**
 * The status table's shape, shared by the DynamoDB adapter, serverless.yml (checked by a test) and
 * the `status` command. One table:
 *
 * - current result, one item per source repository, reference (tag or digest) and destination:
 *   `pk = REPO#<repository>`, `sk = REF#<reference>#DEST#<destination id>`;
 * - attempt history, expiring through the TTL attribute:
 *   `pk = REPO#<repository>`, `sk = HIST#<reference>#DEST#<destination id>#<ISO time>#<event id>`;
 * - index `byStatus`: `gsi1pk = <status>`, `gsi1sk = <updatedAt ISO>`, for "failed, newest first".
 */
export const TABLE_KEYS = { partition: 'pk', sort: 'sk' } as const;
export const STATUS_INDEX = { name: 'byStatus', partition: 'gsi1pk', sort: 'gsi1sk' } as const;
export const TTL_ATTRIBUTE = 'expiresAt';

export const MIRROR_STATUSES = [
  'in_progress',
  'succeeded',
  'skipped',
  'failed',
  'conflict',
  'deleted',
] as const;
export type MirrorStatus = (typeof MIRROR_STATUSES)[number];

export interface RecordKey {
  sourceRepository: string;
  /** The tag, or the digest for a digest-only push. */
  reference: string;
  destinationId: string;
}

export interface MirrorRecord extends RecordKey {
  status: MirrorStatus;
  tag?: string;
  destinationRepository: string;
  sourceDigest?: string;
  destinationDigest?: string;
  bytes: number;
  /** Blobs uploaded to the destination. */
  blobsCopied: number;
  /**
   * Blobs the destination registry mounted from another of its repositories (no bytes sent); 0 on
   * records written before mounting existed.
   */
  blobsMounted: number;
  /** Blobs the destination already had. */
  blobsSkipped: number;
  durationMs: number;
  /** Attempts recorded for this item so far, this one included. */
  attempts: number;
  lastErrorCode?: string;
  lastErrorMessage?: string;
  eventId: string;
  /** When the push happened (the event's time): newer events win over older ones. */
  eventTime: string;
  /** When this attempt started: for the same event, a later attempt wins over a slower earlier one. */
  startedAt: string;
  updatedAt: string;
}

export const partitionKey = (repository: string): string => `REPO#${repository}`;
export const currentSortKey = (key: Pick<RecordKey, 'reference' | 'destinationId'>): string =>
  `REF#${key.reference}#DEST#${key.destinationId}`;
export const referencePrefix = (reference: string): string => `REF#${reference}#DEST#`;
export const historySortKey = (key: RecordKey, at: string, eventId: string): string =>
  `HIST#${key.reference}#DEST#${key.destinationId}#${at}#${eventId}`;
/** The start of every history sort key of one item, for "newest attempts first" queries. */
export const historyPrefix = (key: Pick<RecordKey, 'reference' | 'destinationId'>): string =>
  `HIST#${key.reference}#DEST#${key.destinationId}#`;
