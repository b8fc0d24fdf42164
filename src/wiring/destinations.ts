import { ECRClient } from '@aws-sdk/client-ecr';
import { STSClient } from '@aws-sdk/client-sts';
import { assumeRoleCredentials } from '../aws/assume-role';
import { EcrRepositories } from '../aws/ecr-repositories';
import type { Destination, MirrorConfig } from '../config/config';
import { ecrHost } from '../core/ecr-host';
import type { DestinationClients } from '../mirror/ports';
import type { RegistryAccess } from '../registry/open';
import { openAwsRegistry } from './registries';

/**
 * How the Lambdas reach AWS: every SDK client they use is built in src/wiring, from the validated
 * configuration. Clients get a region and credentials only, never an endpoint: the SDK honours
 * `AWS_ENDPOINT_URL_<SERVICE>` by itself, which is how local runs and tests redirect them.
 */
export interface AwsOptions {
  /** Shows in the destination accounts' CloudTrail. */
  sessionName?: string;
  /** Narrows the destination sessions to what the function does there (src/permissions.ts). */
  sessionPolicy?: string;
  /** Registry retries and timeouts (tests shorten them). */
  registry?: Pick<RegistryAccess, 'retry' | 'timeouts'>;
}

/** The registry access the Lambdas use: REGISTRY_ENDPOINTS (local runs and tests) and any overrides. */
export const registryAccess = (config: MirrorConfig, options: AwsOptions): RegistryAccess => ({
  endpoints: config.registryEndpoints,
  ...options.registry,
});

/**
 * Each destination's clients, built on first use and kept: its role assumed with the external id
 * (renewed before it expires), its registry with tokens from that role, its repositories over ECR.
 */
export function awsDestinations(
  config: MirrorConfig,
  options: AwsOptions,
): (d: Destination) => DestinationClients {
  const sts = new STSClient({ region: config.functionRegion });
  const sessionName = options.sessionName ?? 'ecr-mirror';
  const access = registryAccess(config, options);
  const built = new Map<string, DestinationClients>();
  return (d) => {
    let clients = built.get(d.id);
    if (!clients) {
      const credentials = assumeRoleCredentials({
        sts,
        roleArn: d.roleArn,
        externalId: d.externalId,
        sessionName,
        ...(options.sessionPolicy && { policy: options.sessionPolicy }),
      });
      const ecr = new ECRClient({ region: d.region, credentials });
      const host = ecrHost(d.accountId, d.region);
      const label = `${d.accountId}/${d.region}`;
      clients = {
        label,
        host,
        repositories: new EcrRepositories(ecr, label),
        connect: async () => void (await credentials()),
        registry: openAwsRegistry(host, { ...access, ecr, awsCredentials: credentials }),
      };
      built.set(d.id, clients);
    }
    return clients;
  };
}
