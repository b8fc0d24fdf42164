import { MirrorError } from '../errors';

/**
 * REGISTRY_ENDPOINTS: a JSON object of registry host to base URL, so local runs and tests can put real
 * registries behind ECR hostnames. Shared by the Lambdas' configuration and the CLI; no schema library,
 * so the CLI does not load one at start.
 */
export function parseRegistryEndpoints(
  raw: string | undefined,
  setting = 'REGISTRY_ENDPOINTS',
): Record<string, string> {
  if (raw === undefined || raw.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new MirrorError('INVALID_CONFIG', `${setting}: is not valid JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new MirrorError('INVALID_CONFIG', `${setting}: must be a JSON object of registry host to URL`);
  }
  const out: Record<string, string> = {};
  for (const [host, url] of Object.entries(parsed)) {
    if (typeof url !== 'string' || !/^https?:\/\/[^/\s]+/.test(url)) {
      throw new MirrorError('INVALID_CONFIG', `${setting}.${host}: must be an http:// or https:// URL`);
    }
    out[host] = url;
  }
  return out;
}
