import { parseEcrHost } from '../core/ecr-host';
import { DOCKER_HUB } from '../core/reference';
import { MirrorError } from '../errors';
import { anonymous, type CredentialProvider, type Credentials, staticCredentials } from './auth';
import { HttpRegistry } from './http-registry';
import type { Pacing } from './pacing';
import type { RetryPolicy } from './retry';
import type { Timeouts } from './transport';
import type { UploadMode } from './upload';

export interface RegistryAccess {
  /** Plain HTTP for registries that are not ECR (local registries). */
  insecure?: boolean;
  /** Fixed credentials; without them ECR hosts use `ecrCredentialProvider`, others go anonymous. */
  credentials?: Credentials;
  /** Credentials that may change (a Secrets Manager secret), asked before each handshake. */
  credentialProvider?: CredentialProvider;
  /** Host to base URL, such as `{"1111….dkr.ecr.us-east-1.amazonaws.com": "http://127.0.0.1:5001"}`. */
  endpoints?: Readonly<Record<string, string>>;
  /**
   * Registry credentials for an ECR host (GetAuthorizationToken). Passed in, so that this layer knows
   * no AWS: src/wiring/registries.ts supplies it.
   */
  ecrCredentialProvider?: (host: string) => CredentialProvider;
  timeouts?: Partial<Timeouts>;
  retry?: RetryPolicy;
  uploadMode?: UploadMode;
  chunkBytes?: number;
  /** Pacing per host and action class; the process's shared one by default. */
  pacing?: Pacing;
}

/** Where a registry host is reached: a mapped endpoint, Docker Hub's API host, or the host itself. */
export function registryBaseUrl(
  host: string,
  access: Pick<RegistryAccess, 'insecure' | 'endpoints'> = {},
): string {
  const mapped = access.endpoints?.[host];
  if (mapped) return mapped.replace(/\/+$/, '');
  if (host === DOCKER_HUB) return 'https://registry-1.docker.io';
  const plain = access.insecure === true && parseEcrHost(host) === undefined;
  return `${plain ? 'http' : 'https'}://${host}`;
}

export function openRegistry(host: string, access: RegistryAccess = {}): HttpRegistry {
  const ecr = parseEcrHost(host) !== undefined;
  let credentials: CredentialProvider = anonymous;
  if (access.credentials) credentials = staticCredentials(access.credentials);
  else if (access.credentialProvider) credentials = access.credentialProvider;
  else if (ecr) {
    if (!access.ecrCredentialProvider) {
      throw new MirrorError('INVALID_ARGUMENT', `${host} is an ECR registry: open it with ECR credentials`);
    }
    credentials = access.ecrCredentialProvider(host);
  }
  return new HttpRegistry({
    host,
    baseUrl: registryBaseUrl(host, access),
    credentials,
    // ECR always wants Basic; with given credentials, offering them first saves the 401 round trip
    // (a registry that wants Bearer still answers with its challenge).
    preemptiveBasic: ecr || access.credentials !== undefined || access.credentialProvider !== undefined,
    userAgent: 'ecr-mirror/0.1',
    ...(access.timeouts && { timeouts: access.timeouts }),
    ...(access.retry && { retry: access.retry }),
    ...(access.uploadMode && { uploadMode: access.uploadMode }),
    ...(access.chunkBytes && { chunkBytes: access.chunkBytes }),
    ...(access.pacing && { pacing: access.pacing }),
  });
}
