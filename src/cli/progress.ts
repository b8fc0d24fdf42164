import type { CopyEvent, CopySummary } from '../copy/events';
import { forTerminal } from './terminal';

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** A one-line progress display on a terminal: blobs done and bytes sent, redrawn a few times a second. */
export class ProgressLine {
  private bytes = 0;
  private started = 0;
  private done = 0;
  private skipped = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly out: NodeJS.WriteStream) {}

  readonly onEvent = (event: CopyEvent): void => {
    if (event.type === 'blob-bytes') this.bytes += event.bytes;
    else if (event.type === 'blob-start') this.started++;
    else if (event.type === 'blob-done') {
      if (event.skipped) this.skipped++;
      else this.done++;
    }
    this.timer ??= setInterval(() => this.draw(), 200);
  };

  private draw(): void {
    const active = this.started - this.done;
    this.out.write(
      `\r\x1b[Kblobs: ${this.done} copied, ${this.skipped} present, ${active} in flight; ${formatBytes(this.bytes)} sent`,
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

export function formatSummary(summary: CopySummary): string {
  // References and the media type can carry what a registry sent: shown, never acted on.
  const s = {
    ...summary,
    source: forTerminal(summary.source),
    destination: forTerminal(summary.destination),
  };
  const lines = [
    s.upToDate ? `Up to date: ${s.destination}` : `Copied ${s.source}`,
    s.upToDate ? `  source ${s.source}` : `    to   ${s.destination}`,
    `  manifests: ${s.manifests.copied} copied, ${s.manifests.skipped} already present`,
    `  blobs:     ${s.blobs.copied} copied, ${s.blobs.skipped} already present, ${s.blobs.mounted} mounted, ${formatBytes(s.bytes)} sent`,
    `  referrers: ${s.referrers}`,
    `  ${s.seconds.toFixed(2)} s, ${s.requests.source} requests to the source, ${s.requests.destination} to the destination`,
  ];
  return `${lines.join('\n')}\n`;
}
