import { parseRegistryEndpoints } from '../config/endpoints';
import { parsePatternList } from '../config/patterns';
import { MirrorError } from '../errors';
import { parseCredentials } from '../registry/auth';
import { parseLocation } from '../sync/location';
import {
  DEFAULT_IMAGES,
  DEFAULT_SYNC_CONCURRENCY,
  runSync,
  type SyncEvent,
  type SyncSummary,
} from '../sync/sync';
import { syncDeps } from '../wiring/sync';
import { commandSignal } from './cancel';
import { formatBytes } from './progress';
import { forTerminal } from './terminal';

export interface SyncCommandOptions {
  repositories?: string;
  excludeRepositories?: string;
  tags?: string;
  excludeTags?: string;
  dryRun?: boolean;
  concurrency?: string;
  images?: string;
  srcCreds?: string;
  destCreds?: string;
  insecure?: boolean;
  referrers: boolean;
  json?: boolean;
  registryEndpoints?: string;
}

function wholeNumber(value: string | undefined, flag: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new MirrorError('INVALID_ARGUMENT', `${flag} must be a whole number from 1 to ${max}`);
  }
  return n;
}

/** `ecr-mirror sync SRC_REGISTRY[/PREFIX] DST_REGISTRY[/PREFIX]`: exit 0, or 1 when any image failed. */
export async function runSyncCommand(src: string, dst: string, opts: SyncCommandOptions): Promise<void> {
  const source = parseLocation(src, 'SRC');
  const destination = parseLocation(dst, 'DST');
  const images = wholeNumber(opts.images, '--images', DEFAULT_IMAGES, 64);
  const concurrency = wholeNumber(opts.concurrency, '--concurrency', DEFAULT_SYNC_CONCURRENCY, 256);
  const endpoints = parseRegistryEndpoints(opts.registryEndpoints);
  const cancel = commandSignal();
  const deps = await syncDeps(source, destination, {
    insecure: opts.insecure === true,
    endpoints,
    signal: cancel.signal,
    ...(opts.srcCreds && { sourceCredentials: parseCredentials(opts.srcCreds, '--src-creds') }),
    ...(opts.destCreds && { destinationCredentials: parseCredentials(opts.destCreds, '--dest-creds') }),
  });
  const progress = !opts.json && process.stderr.isTTY ? new SyncProgress(process.stderr) : undefined;
  try {
    const summary = await runSync(
      {
        source,
        destination,
        repositories: {
          include: parsePatternList(opts.repositories),
          exclude: parsePatternList(opts.excludeRepositories),
        },
        tags: { include: parsePatternList(opts.tags), exclude: parsePatternList(opts.excludeTags) },
        dryRun: opts.dryRun === true,
        images,
        concurrency,
        referrers: opts.referrers,
        signal: cancel.signal,
        ...(progress && { onEvent: progress.onEvent }),
      },
      deps,
    );
    progress?.stop();
    process.stdout.write(opts.json ? `${JSON.stringify(summary)}\n` : formatSyncSummary(summary));
    if (summary.failures.length > 0) {
      const n = summary.failures.length;
      process.stderr.write(
        `ecr-mirror: sync: ${n} failure${n === 1 ? '' : 's'}, each listed in the summary\n`,
      );
      process.exitCode = 1;
    }
  } finally {
    progress?.stop();
    cancel.dispose();
    deps.close();
  }
}

/** Images done of those known so far, bytes sent and the rate, redrawn a few times a second. */
export class SyncProgress {
  private total = 0;
  private done = 0;
  private failed = 0;
  private inSync = 0;
  private bytes = 0;
  private readonly started = performance.now();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly out: NodeJS.WriteStream) {}

  readonly onEvent = (event: SyncEvent): void => {
    if (event.type === 'planned') {
      this.total += event.images;
      this.inSync += event.inSync;
    } else if (event.type === 'image-done') {
      this.done++;
      if (!event.ok) this.failed++;
    } else if (event.type === 'blob-bytes') this.bytes += event.bytes;
    this.timer ??= setInterval(() => this.draw(), 200);
  };

  private draw(): void {
    const seconds = (performance.now() - this.started) / 1000;
    const rate = seconds > 0 ? this.bytes / seconds : 0;
    this.out.write(
      `\r\x1b[Kimages ${this.inSync + this.done}/${this.total} (${this.inSync} in sync, ${this.failed} failed)` +
        ` · ${formatBytes(this.bytes)} sent · ${formatBytes(rate)}/s`,
    );
  }

  stop(): void {
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
      this.out.write('\r\x1b[K');
    }
  }
}

export function formatSyncSummary(s: SyncSummary): string {
  const lines: string[] = [];
  const head = s.dryRun ? 'Dry run' : 'Synced';
  lines.push(`${head}: ${forTerminal(s.source)} → ${forTerminal(s.destination)}`);
  if (s.dryRun) {
    for (const d of s.differences) {
      lines.push(
        `  would copy ${forTerminal(`${d.repository}:${d.tag}`)} → ${forTerminal(`${d.destinationRepository}:${d.tag}`)}` +
          ` (${d.reason}${d.destinationDigest ? `, destination has ${d.destinationDigest.slice(0, 19)}…` : ''})`,
      );
    }
  }
  const copied = s.dryRun ? 'to copy' : 'copied';
  lines.push(
    `  images:   ${s.images.copied} ${copied}, ${s.images.inSync} in sync, ${s.images.failed} failed` +
      ` (${s.images.total} tags in ${s.repositories} repositories)`,
  );
  if (!s.dryRun) {
    lines.push(
      `  blobs:    ${s.blobs.copied} copied, ${s.blobs.mounted} mounted, ${s.blobs.skipped} already present; ${formatBytes(s.bytes)} sent`,
    );
  }
  const throttled = s.throttled.source + s.throttled.destination;
  lines.push(
    `  requests: ${s.requests.source} to the source, ${s.requests.destination} to the destination` +
      (throttled > 0 ? ` (${s.throttled.source} and ${s.throttled.destination} throttled)` : ''),
  );
  lines.push(`  ${s.seconds.toFixed(2)} s`);
  for (const f of s.failures) {
    const what = f.tag === undefined ? f.repository : `${f.repository}:${f.tag}`;
    lines.push(`  failed: ${forTerminal(what)}: ${f.code}: ${forTerminal(f.message)}`);
  }
  return `${lines.join('\n')}\n`;
}
