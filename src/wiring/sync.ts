import type { ECRClient } from '@aws-sdk/client-ecr';
import { parseEcrHost } from '../core/ecr-host';
import type { Credentials } from '../registry/auth';
import type { HttpRegistry } from '../registry/http-registry';
import { type RegistryAccess, registryBaseUrl } from '../registry/open';
import { registryPacing } from '../registry/pacing';
import { type Inventory, registryInventory } from '../sync/inventory';
import type { SyncLocation } from '../sync/location';
import type { SyncDeps } from '../sync/sync';
import { openAwsRegistry } from './registries';

export interface SyncAccess extends Pick<RegistryAccess, 'insecure' | 'endpoints'> {
  sourceCredentials?: Credentials;
  destinationCredentials?: Credentials;
  signal?: AbortSignal;
}

/**
 * What `ecr-mirror sync` talks to, built here as the Lambdas' clients are: both registries, the
 * source's inventory (the ECR API for an ECR registry, which serves no catalog; the registry API
 * otherwise), and for an ECR destination its repositories, created when missing. The AWS SDK is
 * loaded only when a side is ECR, so a sync between other registries never loads it.
 */
export async function syncDeps(
  source: SyncLocation,
  destination: SyncLocation,
  access: SyncAccess,
): Promise<SyncDeps & { close(): void }> {
  const open = (host: string, credentials: Credentials | undefined): HttpRegistry =>
    openAwsRegistry(host, {
      ...(access.insecure !== undefined && { insecure: access.insecure }),
      ...(access.endpoints && { endpoints: access.endpoints }),
      ...(credentials && { credentials }),
    });
  const src = open(source.registry, access.sourceCredentials);
  const dst = open(destination.registry, access.destinationCredentials);
  const clients: ECRClient[] = [];
  const ecrClient = async (host: string): Promise<ECRClient | undefined> => {
    const ecr = parseEcrHost(host);
    if (!ecr) return undefined;
    const { ECRClient } = await import('@aws-sdk/client-ecr');
    // The SDK's adaptive retry paces the API calls under ECR's quotas, as the registry requests are.
    const client = new ECRClient({
      region: ecr.region,
      retryMode: 'adaptive',
      ...(ecr.fips && { useFipsEndpoint: true }),
    });
    clients.push(client);
    return client;
  };

  let inventory: Inventory;
  const sourceEcr = await ecrClient(source.registry);
  if (sourceEcr) {
    const { EcrListing } = await import('../aws/ecr-listing');
    inventory = new EcrListing(sourceEcr, parseEcrHost(source.registry)!.accountId);
  } else {
    inventory = registryInventory(src, access.signal ? { signal: access.signal } : {});
  }

  let ensureRepository: SyncDeps['ensureRepository'];
  const destinationEcr = await ecrClient(destination.registry);
  if (destinationEcr) {
    const { EcrRepositories } = await import('../aws/ecr-repositories');
    const repositories = new EcrRepositories(destinationEcr, destination.registry);
    // What CreateRepository gives when asked for nothing else (the mirror's REPOSITORY_SETTINGS defaults).
    const settings = {
      tagMutability: 'MUTABLE',
      scanOnPush: false,
      encryption: { type: 'AES256' },
      tags: {},
    } as const;
    ensureRepository = async (repository) => void (await repositories.ensure(repository, settings, true));
  }

  // The pace is kept per host as requests reach it (the mapped endpoint's, in tests and local runs).
  const paceHost = (host: string) => new URL(registryBaseUrl(host, access)).host;
  const sourcePace = paceHost(source.registry);
  const destinationPace = paceHost(destination.registry);
  return {
    source: src,
    destination: dst,
    inventory,
    ...(ensureRepository && { ensureRepository }),
    throttled: () => ({
      source: registryPacing.stats(sourcePace).throttled,
      destination: registryPacing.stats(destinationPace).throttled,
    }),
    close: () => {
      for (const c of clients) c.destroy();
    },
  };
}
