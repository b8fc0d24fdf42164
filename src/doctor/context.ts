import type { AwsCredentialIdentity } from '@smithy/types';
import type { MirrorConfig, SourceConfig } from '../config/config';
import { registryBaseUrl } from '../registry/open';
import type { ProbeOptions } from '../registry/probe';
import type { RetryPolicy } from '../registry/retry';
import type { Timeouts } from '../registry/transport';
import type { DoctorClients } from './clients';
import type { Principal } from './fixes';

/** What one doctor run checks, and with what. */
export interface DoctorContext {
  source: SourceConfig;
  /** The whole mirror's configuration; absent where only a source is configured (a consumer of `grant`). */
  mirror?: MirrorConfig;
  /** `--repository REPO[:TAG]`. */
  target?: { repository: string; reference?: string };
  /** The mirror function's execution role (from `--function`): the principal destination roles trust. */
  mirrorRole?: string;
  /** Where the deployment (rule, queues, status table) lives. */
  deploymentRegion?: string;
  clients: DoctorClients;
  /** Registry retries and timeouts (tests shorten them). */
  registry?: { retry?: RetryPolicy; timeouts?: Partial<Timeouts> };
  now?: () => number;
}

export interface DestinationState {
  credentials?: AwsCredentialIdentity;
  /** The registry token's user and password. */
  token?: { username: string; password: string };
  /** The mapped repository checked in this destination. */
  repository?: string;
}

/** What earlier checks learnt for later ones. */
export interface DoctorState {
  caller?: Principal;
  sourceToken?: { username: string; password: string };
  /** The source repository (and tag or digest) the read, repository and rule checks use. */
  sample?: { repository: string; reference?: string };
  destinations: Map<string, DestinationState>;
}

export function probeOptions(
  ctx: DoctorContext,
  host: string,
  token: { username: string; password: string },
): ProbeOptions {
  return {
    baseUrl: registryBaseUrl(host, { endpoints: ctx.source.registryEndpoints }),
    credentials: async () => token,
    ...(ctx.registry?.retry && { retry: ctx.registry.retry }),
    ...(ctx.registry?.timeouts && { timeouts: ctx.registry.timeouts }),
  };
}

/** `host`, and where it is really reached when REGISTRY_ENDPOINTS maps it. */
export function hostLabel(ctx: DoctorContext, host: string): string {
  const mapped = ctx.source.registryEndpoints[host];
  return mapped ? `${host} (via ${mapped})` : host;
}
