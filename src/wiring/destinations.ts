import { ECRClient } from '@aws-sdk/client-ecr';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { STSClient } from '@aws-sdk/client-sts';
import { assumeRoleCredentials } from '../aws/assume-role';
import { DestinationSecret } from '../aws/destination-secret';
import { ecrCredentials } from '../aws/ecr-auth';
import { EcrRepositories } from '../aws/ecr-repositories';
import { secretEcrClient } from '../aws/secret-ecr-client';
import type { Destination, MirrorConfig, RegistryDestination, RoleDestination } from '../config/config';
import { MirrorError } from '../errors';
import type { DestinationClients } from '../mirror/ports';
import { RegistryRepositories } from '../mirror/registry-repositories';
import type { CredentialProvider } from '../registry/auth';
import { openRegistry, type RegistryAccess } from '../registry/open';
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
  /** How long a destination secret's value is used before it is read again (tests shorten it). */
  secretTtlMs?: number;
}

/** The registry access the Lambdas use: REGISTRY_ENDPOINTS (local runs and tests) and any overrides. */
export const registryAccess = (config: MirrorConfig, options: AwsOptions): RegistryAccess => ({
  endpoints: config.registryEndpoints,
  ...options.registry,
});

/**
 * Each destination's clients, built on first use and kept: for an ECR destination its role assumed
 * with the external id (renewed before it expires), its registry with tokens from that role, its
 * repositories over ECR; for a destination named by its registry, credentials from its secret.
 */
export function awsDestinations(
  config: MirrorConfig,
  options: AwsOptions,
): (d: Destination) => DestinationClients {
  const sts = new STSClient({ region: config.functionRegion });
  const secrets = new Map<string, SecretsManagerClient>();
  const built = new Map<string, DestinationClients>();
  return (d) => {
    let clients = built.get(d.id);
    if (!clients) {
      clients =
        d.kind === 'role'
          ? roleDestination(d, config, options, sts)
          : secretDestination(d, config, options, secrets);
      built.set(d.id, clients);
    }
    return clients;
  };
}

function roleDestination(
  d: RoleDestination,
  config: MirrorConfig,
  options: AwsOptions,
  sts: STSClient,
): DestinationClients {
  const credentials = assumeRoleCredentials({
    sts,
    roleArn: d.roleArn,
    externalId: d.externalId,
    sessionName: options.sessionName ?? 'ecr-mirror',
    ...(options.sessionPolicy && { policy: options.sessionPolicy }),
  });
  const ecr = new ECRClient({ region: d.region, credentials });
  const label = `${d.accountId}/${d.region}`;
  return {
    label,
    host: d.host,
    repositories: new EcrRepositories(ecr, label),
    connect: async () => void (await credentials()),
    registry: openAwsRegistry(d.host, {
      ...registryAccess(config, options),
      ecr,
      awsCredentials: credentials,
    }),
  };
}

/**
 * A destination whose credentials are in a Secrets Manager secret, read with the function's own role
 * (in the secret's region). A username and password log in to the registry (Basic, or Bearer when it
 * challenges); access keys ask ECR for a token in the registry's own region and partition, and manage
 * its repositories over the ECR API. A refused credential reads the secret again once before failing.
 */
function secretDestination(
  d: RegistryDestination,
  config: MirrorConfig,
  options: AwsOptions,
  clients: Map<string, SecretsManagerClient>,
): DestinationClients {
  const secretRegion = d.credentials.secretArn.split(':')[3]!;
  let sm = clients.get(secretRegion);
  if (!sm) {
    sm = new SecretsManagerClient({ region: secretRegion });
    clients.set(secretRegion, sm);
  }
  const secret = new DestinationSecret(sm, d.credentials.secretArn, {
    ...(options.secretTtlMs !== undefined && { ttlMs: options.secretTtlMs }),
  });
  const access = registryAccess(config, options);
  const connect = async () => void (await secret.get());
  if (d.accountId !== undefined && d.region !== undefined) {
    const ecr = secretEcrClient(secret, d.region);
    const tokens = ecrCredentials(d.host, { clientFactory: () => ecr, renewWhenRefused: true });
    const provider: CredentialProvider = () => tokens();
    // Refused: the keys may have been rotated; read them again, then ask for a new token.
    provider.refresh = async () => {
      await secret.refresh();
      return tokens.refresh!();
    };
    const label = `${d.id} (${d.host})`;
    return {
      label,
      host: d.host,
      repositories: new EcrRepositories(ecr, label),
      connect,
      registry: openRegistry(d.host, { ...access, ecrCredentialProvider: () => provider }),
    };
  }
  const provider: CredentialProvider = async () => {
    const value = await secret.get();
    if (value.kind !== 'password') {
      throw new MirrorError(
        'INVALID_CONFIG',
        `secret ${d.credentials.secretArn} holds access keys, which serve an ECR registry; ${d.host} needs {"username","password"}`,
      );
    }
    return { username: value.username, password: value.password };
  };
  provider.refresh = () => secret.refresh();
  const registry = openRegistry(d.host, { ...access, credentialProvider: provider });
  return {
    label: `${d.id} (${d.host})`,
    host: d.host,
    registry,
    repositories: new RegistryRepositories(registry, d.host),
    connect,
  };
}
