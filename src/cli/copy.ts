import { parseRegistryEndpoints } from '../config/endpoints';
import { copyImage } from '../copy/copy-image';
import { parseReference } from '../core/reference';
import { MirrorError } from '../errors';
import { parseCredentials } from '../registry/auth';
import { openAwsRegistry } from '../wiring/registries';
import { commandSignal } from './cancel';
import { parseDuration } from './duration';
import { formatSummary, ProgressLine } from './progress';

export interface CopyCommandOptions {
  srcCreds?: string;
  destCreds?: string;
  insecure?: boolean;
  referrers: boolean;
  json?: boolean;
  concurrency?: string;
  registryEndpoints?: string;
  timeout?: string;
}

export async function runCopy(src: string, dst: string, opts: CopyCommandOptions): Promise<void> {
  const sourceRef = parseReference(src);
  const destinationRef = parseReference(dst);
  const concurrency = opts.concurrency === undefined ? undefined : Number(opts.concurrency);
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64)) {
    throw new MirrorError('INVALID_ARGUMENT', '--concurrency must be a whole number from 1 to 64');
  }
  const timeoutMs = opts.timeout === undefined ? undefined : parseDuration(opts.timeout, '--timeout');
  if (timeoutMs !== undefined && timeoutMs <= 0) {
    throw new MirrorError('INVALID_ARGUMENT', '--timeout must be a duration such as 90s, 30m or 2h');
  }
  const endpoints = parseRegistryEndpoints(opts.registryEndpoints);
  const insecure = opts.insecure === true;
  const source = openAwsRegistry(sourceRef.registry, {
    insecure,
    endpoints,
    ...(opts.srcCreds && { credentials: parseCredentials(opts.srcCreds, '--src-creds') }),
  });
  const destination = openAwsRegistry(destinationRef.registry, {
    insecure,
    endpoints,
    ...(opts.destCreds && { credentials: parseCredentials(opts.destCreds, '--dest-creds') }),
  });

  const progress = !opts.json && process.stderr.isTTY ? new ProgressLine(process.stderr) : undefined;
  const cancel = commandSignal(
    timeoutMs === undefined ? undefined : { ms: timeoutMs, text: opts.timeout!.trim() },
  );
  try {
    const summary = await copyImage(source, sourceRef, destination, destinationRef, {
      signal: cancel.signal,
      referrers: opts.referrers,
      ...(concurrency !== undefined && { concurrency }),
      ...(progress && { onEvent: progress.onEvent }),
    });
    progress?.stop();
    process.stdout.write(opts.json ? `${JSON.stringify(summary)}\n` : formatSummary(summary));
  } finally {
    cancel.dispose();
    progress?.stop();
  }
}
