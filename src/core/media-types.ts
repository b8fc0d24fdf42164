/** Manifest media types, per the OCI image spec and Docker's image manifest v2 schema 2. */
export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  /** OCI 1.1 release candidates only; a few registries still hold such manifests. */
  OciArtifactManifest: 'application/vnd.oci.artifact.manifest.v1+json',
  DockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  OciEmpty: 'application/vnd.oci.empty.v1+json',
} as const;

export type ManifestKind = 'image' | 'index';

const KINDS: Record<string, ManifestKind> = {
  [MediaType.OciManifest]: 'image',
  [MediaType.DockerManifest]: 'image',
  [MediaType.OciArtifactManifest]: 'image',
  [MediaType.OciIndex]: 'index',
  [MediaType.DockerManifestList]: 'index',
};

/** Every manifest type we copy, for the `Accept` header: a registry may convert a tag to what we accept. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = Object.keys(KINDS);

export function manifestKind(mediaType: string): ManifestKind | undefined {
  return KINDS[mediaType];
}

/** Strips parameters (`; charset=utf-8`) that some registries add to `Content-Type`. */
export function normalizeMediaType(value: string | undefined | null): string | undefined {
  if (!value) return undefined;
  const base = value.split(';')[0]!.trim().toLowerCase();
  return base.length > 0 ? base : undefined;
}
