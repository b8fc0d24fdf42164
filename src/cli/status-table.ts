import type { MirrorRecord, MirrorStatus } from '../status/schema';
import { formatBytes } from './progress';
import { forTerminal } from './terminal';

const COLOURS: Record<MirrorStatus, string> = {
  succeeded: '\x1b[32m',
  skipped: '\x1b[2m',
  in_progress: '\x1b[36m',
  deleted: '\x1b[35m',
  failed: '\x1b[31m',
  conflict: '\x1b[33m',
};
const RESET = '\x1b[0m';

const shortDigest = (d: string | undefined): string => (d ? d.replace(/^sha256:/, '').slice(0, 12) : '-');

/** Blobs uploaded/mounted/already there: `3/2/1`; `-` when the attempt moved none. */
function blobCounts(r: MirrorRecord): string {
  const mounted = r.blobsMounted ?? 0;
  if (r.blobsCopied + mounted + r.blobsSkipped === 0) return '-';
  return `${r.blobsCopied}/${mounted}/${r.blobsSkipped}`;
}

/** Renders status records as an aligned table, newest first, with the status coloured on a terminal. */
export function renderTable(records: readonly MirrorRecord[], colour: boolean): string {
  const header = [
    'UPDATED',
    'STATUS',
    'REPOSITORY',
    'TAG/DIGEST',
    'DESTINATION',
    'DIGEST',
    'SIZE',
    'BLOBS',
    'TRIES',
    'ERROR',
  ];
  const rows = records
    .map((r) => [
      r.updatedAt.replace('T', ' ').slice(0, 19),
      r.status,
      r.sourceRepository,
      r.reference.startsWith('sha256:') ? `@${shortDigest(r.reference)}` : r.reference,
      r.destinationRepository === r.sourceRepository
        ? r.destinationId
        : `${r.destinationId}:${r.destinationRepository}`,
      shortDigest(r.sourceDigest),
      r.bytes > 0 ? formatBytes(r.bytes) : '-',
      blobCounts(r),
      String(r.attempts),
      r.lastErrorCode ? `${r.lastErrorCode}: ${r.lastErrorMessage ?? ''}` : '',
    ])
    .map((cells) =>
      // Stored text (a registry's error message above all) is shown, never acted on: one row a record.
      cells.map((cell, i) => (i === cells.length - 1 ? forTerminal(cell).slice(0, 120) : forTerminal(cell))),
    );
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[], paint?: string): string =>
    cells
      .map((cell, i) => {
        const padded = i === cells.length - 1 ? cell : cell.padEnd(widths[i]!);
        return i === 1 && paint ? `${paint}${padded}${RESET}` : padded;
      })
      .join('  ')
      .trimEnd();
  const body = rows.map((row, i) => line(row, colour ? COLOURS[records[i]!.status] : undefined));
  return [line(header), ...body].join('\n');
}

export function summaryLine(records: readonly MirrorRecord[]): string {
  const counts = new Map<string, number>();
  for (const r of records) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
  const parts = [...counts.entries()]
    .sort((x, y) => y[1] - x[1])
    .map(([s, n]) => `${n} ${s.replace('_', ' ')}`);
  return `${records.length} record${records.length === 1 ? '' : 's'}${parts.length > 0 ? `: ${parts.join(', ')}` : ''}`;
}
