import { MirrorError } from '../errors';
import { parseDigest } from './digest';

/** An OCI content descriptor: what a manifest says about a blob or another manifest. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  artifactType?: string;
  platform?: Platform;
}

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
}

/** Validates an untrusted descriptor from a manifest body; `where` names it in errors. */
export function parseDescriptor(value: unknown, where: string): Descriptor {
  if (typeof value !== 'object' || value === null) {
    throw new MirrorError('MANIFEST_INVALID', `${where} is not an object`);
  }
  const d = value as Record<string, unknown>;
  if (typeof d.mediaType !== 'string' || d.mediaType.length === 0) {
    throw new MirrorError('MANIFEST_INVALID', `${where} has no mediaType`);
  }
  if (typeof d.digest !== 'string') throw new MirrorError('MANIFEST_INVALID', `${where} has no digest`);
  try {
    parseDigest(d.digest);
  } catch (err) {
    throw new MirrorError('MANIFEST_INVALID', `${where}: ${(err as Error).message}`);
  }
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw new MirrorError('MANIFEST_INVALID', `${where} has no valid size`);
  }
  const out: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (Array.isArray(d.urls) && d.urls.length > 0) out.urls = d.urls.map(String);
  if (typeof d.annotations === 'object' && d.annotations !== null) {
    out.annotations = d.annotations as Record<string, string>;
  }
  if (typeof d.artifactType === 'string') out.artifactType = d.artifactType;
  if (typeof d.platform === 'object' && d.platform !== null) out.platform = d.platform as Platform;
  return out;
}

/**
 * Foreign ("non-distributable") layers carry `urls` and live outside the registry:
 * registries do not store them, so a mirror must not try to copy them.
 */
export function isForeign(descriptor: Descriptor): boolean {
  return (descriptor.urls?.length ?? 0) > 0;
}
