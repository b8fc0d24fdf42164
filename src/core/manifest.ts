import { MirrorError } from '../errors';
import { type Descriptor, isForeign, parseDescriptor } from './descriptor';
import { digestOf } from './digest';
import {
  MANIFEST_MEDIA_TYPES,
  type ManifestKind,
  MediaType,
  manifestKind,
  normalizeMediaType,
} from './media-types';

/** ECR's PutImage limit; the OCI spec lets registries refuse larger manifests with 413. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/**
 * A manifest as pulled: the exact bytes (pushed back unchanged, since re-serialising JSON changes
 * the digest) and what the copy needs to know about them.
 */
export interface Manifest {
  readonly mediaType: string;
  readonly kind: ManifestKind;
  readonly digest: string;
  readonly bytes: Uint8Array;
  /** Blobs this manifest references: config and layers (or an artifact manifest's blobs). */
  readonly blobs: readonly Descriptor[];
  /** Child manifests of an index or manifest list. */
  readonly manifests: readonly Descriptor[];
  /** OCI 1.1: the manifest this one refers to (signature, SBOM, attestation). */
  readonly subject?: Descriptor;
  readonly artifactType?: string;
}

function decode(bytes: Uint8Array): Record<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (err) {
    throw new MirrorError('MANIFEST_INVALID', 'manifest is not valid JSON', { cause: err });
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new MirrorError('MANIFEST_INVALID', 'manifest is not a JSON object');
  }
  return body as Record<string, unknown>;
}

function resolveMediaType(body: Record<string, unknown>, contentType: string | undefined): string {
  if (body.schemaVersion === 1) {
    throw new MirrorError(
      'UNSUPPORTED_MEDIA_TYPE',
      'Docker schema 1 manifests are deprecated and not copied; re-push the image with a current client',
    );
  }
  const declared = typeof body.mediaType === 'string' ? body.mediaType : undefined;
  const header = normalizeMediaType(contentType);
  if (declared !== undefined) {
    if (header !== undefined && manifestKind(header) !== undefined && header !== declared) {
      throw new MirrorError(
        'MANIFEST_INVALID',
        `manifest declares mediaType ${declared} but was served as ${header}`,
      );
    }
    return declared;
  }
  if (header !== undefined && manifestKind(header) !== undefined) return header;
  // OCI manifests may omit mediaType; their shape tells which they are.
  if (Array.isArray(body.manifests)) return MediaType.OciIndex;
  if (typeof body.config === 'object' && body.config !== null) return MediaType.OciManifest;
  return header ?? 'unknown';
}

export function parseManifest(bytes: Uint8Array, contentType?: string): Manifest {
  if (bytes.byteLength > MAX_MANIFEST_BYTES) {
    throw new MirrorError(
      'MANIFEST_TOO_LARGE',
      `manifest is ${bytes.byteLength} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`,
    );
  }
  const body = decode(bytes);
  const mediaType = resolveMediaType(body, contentType);
  const kind = manifestKind(mediaType);
  if (kind === undefined) {
    throw new MirrorError(
      'UNSUPPORTED_MEDIA_TYPE',
      `unsupported manifest media type "${mediaType}" (supported: ${MANIFEST_MEDIA_TYPES.join(', ')})`,
    );
  }

  // A manifest must have the shape its type says, as containers/image (skopeo) requires: an index
  // with `config` or `layers`, or an image with `manifests`, reads two ways (a registry serving an
  // image under an index Content-Type made it an empty index): refused rather than guessed.
  const stray = kind === 'index' ? ['config', 'layers'] : ['manifests'];
  const found = stray.filter((field) => body[field] !== undefined);
  if (found.length > 0) {
    throw new MirrorError(
      'MANIFEST_INVALID',
      `ambiguous manifest: taken as ${mediaType}${body.mediaType === undefined ? ' (it declares no mediaType)' : ''}, yet it has ${found.map((f) => `"${f}"`).join(' and ')}`,
    );
  }

  const list = (field: string): Descriptor[] => {
    const value = body[field];
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value))
      throw new MirrorError('MANIFEST_INVALID', `manifest field "${field}" is not a list`);
    return value.map((d, i) => parseDescriptor(d, `${field}[${i}]`));
  };

  let blobs: Descriptor[] = [];
  let manifests: Descriptor[] = [];
  if (kind === 'index') {
    manifests = list('manifests');
  } else if (mediaType === MediaType.OciArtifactManifest) {
    blobs = list('blobs');
  } else {
    if (body.config === undefined) throw new MirrorError('MANIFEST_INVALID', 'image manifest has no config');
    blobs = [parseDescriptor(body.config, 'config'), ...list('layers')];
  }

  return {
    mediaType,
    kind,
    digest: digestOf(bytes),
    bytes,
    blobs,
    manifests,
    ...(body.subject !== undefined && { subject: parseDescriptor(body.subject, 'subject') }),
    ...(typeof body.artifactType === 'string' && { artifactType: body.artifactType }),
  };
}

/**
 * The blobs a copy must move: distinct by digest, foreign layers left out, largest first. Transfers
 * start in this order under the concurrency limit, so the blob left waiting for a slot is a small
 * one, not a large layer that would then finish last.
 */
export function blobsToCopy(manifest: Manifest): Descriptor[] {
  const seen = new Set<string>();
  const out: Descriptor[] = [];
  for (const blob of manifest.blobs) {
    if (isForeign(blob) || seen.has(blob.digest)) continue;
    seen.add(blob.digest);
    out.push(blob);
  }
  return out.sort((a, b) => b.size - a.size);
}

/** Levels of indexes below a top manifest that a copy follows (index → index → … → image). */
export const MAX_INDEX_DEPTH = 4;
