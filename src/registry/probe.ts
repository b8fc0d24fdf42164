import type { CredentialProvider } from './auth';
import type { RetryPolicy } from './retry';
import { header, type Timeouts, Transport } from './transport';

/**
 * Two requests `ecr-mirror doctor` makes to prove access without moving an image: an authenticated
 * `GET /v2/` (the login), and an upload session opened and cancelled (the right to push, with nothing
 * stored). Apart from RegistryClient: the copy never needs them.
 */
export interface ProbeOptions {
  /** Where the registry is reached (`registryBaseUrl`). */
  baseUrl: string;
  credentials: CredentialProvider;
  /** Offer Basic credentials at once, as for ECR. */
  preemptiveBasic?: boolean;
  retry?: RetryPolicy;
  timeouts?: Partial<Timeouts>;
}

const PROBE_RETRY: RetryPolicy = { attempts: 2, baseDelayMs: 200, maxDelayMs: 1_000, maxElapsedMs: 10_000 };

function transport(options: ProbeOptions): Transport {
  return new Transport({
    baseUrl: options.baseUrl,
    credentials: options.credentials,
    preemptiveBasic: options.preemptiveBasic ?? true,
    retry: options.retry ?? PROBE_RETRY,
    ...(options.timeouts && { timeouts: options.timeouts }),
    userAgent: 'ecr-mirror/0.1 (doctor)',
  });
}

/** `GET /v2/` with the credentials; throws the registry's refusal (401 UNAUTHORIZED) as a RegistryError. */
export async function pingRegistry(options: ProbeOptions): Promise<void> {
  const res = await transport(options).send({
    method: 'GET',
    url: '/v2/',
    repository: '',
    expect: [200],
    kind: 'other',
    what: 'GET /v2/',
  });
  await res.body.dump();
}

export interface UploadProbe {
  /** Whether the registry took the cancellation; when not, the empty session expires by itself. */
  cancelled: boolean;
  /** The status the cancellation got. */
  cancelStatus?: number;
}

/**
 * Opens a blob upload session in `repository` (a write the registry authorizes like any push:
 * `ecr:InitiateLayerUpload` on ECR) and cancels it at once. No byte is uploaded, so nothing is stored.
 */
export async function probeUpload(options: ProbeOptions, repository: string): Promise<UploadProbe> {
  const t = transport(options);
  const started = await t.send({
    method: 'POST',
    url: `/v2/${repository}/blobs/uploads/`,
    repository,
    push: true,
    expect: [202],
    kind: 'upload',
    what: `start upload to ${repository}`,
  });
  const location = header(started, 'location');
  await started.body.dump();
  if (!location) return { cancelled: false };
  try {
    const res = await t.send({
      method: 'DELETE',
      url: new URL(location, started.url).href,
      repository,
      push: true,
      once: true,
      expect: [200, 202, 204, 404, 405],
      kind: 'upload',
      what: `cancel upload to ${repository}`,
    });
    await res.body.dump();
    return { cancelled: res.status < 300, cancelStatus: res.status };
  } catch {
    // Some registries cannot cancel (ECR has no such call): an upload with no bytes stores nothing.
    return { cancelled: false };
  }
}
