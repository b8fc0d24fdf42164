import type { MirrorConfig, SourceConfig } from '../config/config';
import { type Check, type CheckResult, notApplicable, runChecks } from './check';
import type { DoctorContext, DoctorState } from './context';
import { queueCheck, recentStatusCheck, ruleCheck } from './deployment-checks';
import { destinationChecks } from './destination-checks';
import { registryDestinationChecks } from './registry-destination-checks';
import { credentialsCheck, sourceLoginCheck, sourceReadCheck } from './source-checks';

export type { CheckResult } from './check';

/** Where the configuration comes from: known at once (the environment), or read after the caller is known. */
export type ConfigSource =
  | { kind: 'given'; source: SourceConfig; mirror?: MirrorConfig }
  | {
      kind: 'function';
      /** Reads the deployed function's configuration; its errors end the run (there is nothing to check). */
      load: () => Promise<{ mirror: MirrorConfig; mirrorRole?: string; deploymentRegion?: string }>;
      /** The region of the Lambda call, when the function's ARN names one. */
      region?: string;
    };

export type DoctorOptions = Omit<DoctorContext, 'source' | 'mirror'>;

/**
 * Runs every check in the order: `aws.credentials`, `source.login`, `source.read`, the five
 * checks of each destination, then `deployment.rule`, `deployment.queue` and `status.recent`.
 */
export async function runDoctor(
  config: ConfigSource,
  options: DoctorOptions,
  onResult?: (result: CheckResult) => void,
): Promise<CheckResult[]> {
  const state: DoctorState = { destinations: new Map() };
  let ctx: DoctorContext;
  let first: CheckResult[] = [];
  if (config.kind === 'given') {
    ctx = { ...options, source: config.source, ...(config.mirror && { mirror: config.mirror }) };
  } else {
    // The caller first: without credentials the function cannot be read, and that is the answer.
    first = await runChecks([credentialsCheck(options.clients, state, config.region)], onResult);
    if (first[0]!.status === 'fail') return first;
    const loaded = await config.load();
    ctx = {
      ...options,
      source: loaded.mirror,
      mirror: loaded.mirror,
      ...(loaded.mirrorRole && { mirrorRole: loaded.mirrorRole }),
      ...(loaded.deploymentRegion && { deploymentRegion: loaded.deploymentRegion }),
    };
  }

  const checks: Check[] = [];
  if (config.kind === 'given') checks.push(credentialsCheck(ctx.clients, state, ctx.source.sourceRegion));
  checks.push(sourceLoginCheck(ctx, state), sourceReadCheck(ctx, state));
  ctx.mirror?.destinations.forEach((d, i) => {
    checks.push(
      ...(d.kind === 'role'
        ? destinationChecks(ctx, state, d, i)
        : registryDestinationChecks(ctx, state, d, i)),
    );
  });
  if (ctx.mirror) {
    checks.push(ruleCheck(ctx, state), queueCheck(ctx, state), recentStatusCheck(ctx, state));
  } else {
    const none = 'no mirror configured (DESTINATIONS, STATUS_TABLE): only the source was checked';
    for (const id of ['deployment.rule', 'deployment.queue', 'status.recent']) {
      checks.push({ id, needs: [], run: async () => notApplicable(none) });
    }
  }
  // With --function, aws.credentials ran already and passed (else the run ended): it blocks nothing.
  return [...first, ...(await runChecks(checks, onResult))];
}
