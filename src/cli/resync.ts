import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import { awsError } from '../aws/errors';
import { parsePatternList } from '../config/patterns';
import { MirrorError } from '../errors';
import type { Difference, ResyncSummary } from '../resync/plan';
import { type ResyncInput, type ResyncResult, resyncPayload } from '../resync/wire';
import { cliLambda } from '../wiring/cli';
import { DEFAULT_RESYNC_FUNCTION } from './defaults';
import { cliRegion, withRegionHint } from './region';
import { forTerminal } from './terminal';

export interface ResyncCommandOptions {
  repositories?: string;
  tags?: string;
  destinations?: string;
  dryRun?: boolean;
  json?: boolean;
  function?: string;
  region?: string;
}

/**
 * Invokes the deployed resync Lambda and waits for the whole run: when an invocation runs out of time
 * it returns a continuation, and we call again with it until the run is complete.
 */
export async function invokeResync(
  lambda: LambdaClient,
  functionName: string,
  input: ResyncInput,
  onProgress?: (summary: ResyncSummary) => void,
): Promise<{ summary: ResyncSummary; differences: Difference[] }> {
  const differences: Difference[] = [];
  let next: ResyncInput = { ...input, continueInBackground: false };
  for (let call = 0; call < 10_000; call++) {
    let payload: Uint8Array | undefined;
    let functionError: string | undefined;
    try {
      const out = await lambda.send(
        new InvokeCommand({ FunctionName: functionName, Payload: resyncPayload(next) }),
      );
      payload = out.Payload;
      functionError = out.FunctionError;
    } catch (err) {
      throw awsError(`invoke ${functionName}`, err);
    }
    const text = payload ? Buffer.from(payload).toString('utf8') : '';
    if (functionError) {
      let reason = text;
      try {
        const body = JSON.parse(text) as { errorMessage?: string };
        reason = body.errorMessage ?? text;
      } catch {
        // not JSON: keep the text
      }
      throw new MirrorError('AWS_ERROR', `${functionName} failed: ${reason.slice(0, 500)}`);
    }
    const result = JSON.parse(text) as ResyncResult;
    differences.push(...result.differences);
    onProgress?.(result.summary);
    if (!result.continuation) return { summary: result.summary, differences };
    next = { ...input, continueInBackground: false, continuation: result.continuation };
  }
  throw new MirrorError('AWS_ERROR', `${functionName} did not finish`);
}

export function formatResync(summary: ResyncSummary, differences: readonly Difference[]): string {
  const lines: string[] = [];
  if (summary.dryRun && differences.length > 0) {
    lines.push('Differences (dry run, nothing enqueued):');
    for (const d of differences) {
      const detail = d.reason === 'different' ? `has ${d.destinationDigest?.slice(7, 19)}` : 'missing';
      lines.push(`  ${d.repository}:${d.tag} -> ${d.destinationId}:${d.destinationRepository}  ${detail}`);
    }
  }
  lines.push(
    `${summary.dryRun ? 'Dry run' : 'Resync'} ${summary.runId}: ${summary.repositories} repositories, ${summary.checked} tags checked, ${summary.inSync} in sync, ${summary.enqueued} jobs enqueued`,
  );
  for (const [id, c] of Object.entries(summary.destinations)) {
    lines.push(
      `  ${id}: ${c.inSync} in sync, ${c.missing} missing, ${c.different} different, ${c.enqueued} enqueued`,
    );
  }
  for (const e of summary.errors)
    lines.push(`  error: ${e.repository}${e.destinationId ? ` -> ${e.destinationId}` : ''}: ${e.message}`);
  const more = summary.errorCount - summary.errors.length;
  if (more > 0) lines.push(`  ... and ${more} more error${more === 1 ? '' : 's'}`);
  // Repository names, tags and error messages come from registries and AWS: one line each, inert.
  return `${lines.map(forTerminal).join('\n')}\n`;
}

export async function runResyncCommand(opts: ResyncCommandOptions, lambda?: LambdaClient): Promise<void> {
  const client = lambda ?? (await cliLambda(cliRegion(opts.region)));
  const input: ResyncInput = {
    ...(opts.repositories && { repositories: parsePatternList(opts.repositories) }),
    ...(opts.tags && { tags: parsePatternList(opts.tags) }),
    ...(opts.destinations && { destinations: parsePatternList(opts.destinations) }),
    dryRun: opts.dryRun === true,
  };
  const { summary, differences } = await withRegionHint(() =>
    invokeResync(client, opts.function ?? DEFAULT_RESYNC_FUNCTION, input),
  );
  process.stdout.write(
    opts.json ? `${JSON.stringify({ summary, differences }, null, 2)}\n` : formatResync(summary, differences),
  );
  if (summary.errorCount > 0) process.exitCode = 1;
}
