import { MirrorError } from '../errors';
import { parseDigest } from './digest';

/**
 * An image reference: `registry/repository[:tag][@digest]`, immutable.
 * Grammar from the distribution project's `reference` package (the OCI spec's name rules).
 */
export interface Reference {
  /** Registry host with optional port, for example `123456789012.dkr.ecr.eu-west-1.amazonaws.com`. */
  readonly registry: string;
  /** Repository name, possibly nested: `team/app/api`. */
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: string;
}

export const DOCKER_HUB = 'docker.io';
const MAX_NAME_LENGTH = 255;

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const HOST = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`,
);

function invalid(input: string, why: string): MirrorError {
  return new MirrorError('INVALID_REFERENCE', `invalid image reference "${input}": ${why}`);
}

export function validateRepository(repository: string, input = repository): void {
  if (repository.length === 0) throw invalid(input, 'repository name is empty');
  if (repository.length > MAX_NAME_LENGTH) {
    throw invalid(input, `repository name is longer than ${MAX_NAME_LENGTH} characters`);
  }
  for (const component of repository.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      throw invalid(
        input,
        `bad repository name "${repository}": each path component must be lowercase letters and digits, separated by ".", "_", "__" or "-"`,
      );
    }
  }
}

export function validateTag(tag: string, input = tag): void {
  if (!TAG.test(tag)) {
    throw invalid(input, `bad tag "${tag}": up to 128 of [A-Za-z0-9_.-], not starting with "." or "-"`);
  }
}

/** True when the first path segment names a registry rather than a repository component. */
function looksLikeRegistry(segment: string): boolean {
  return (
    segment.includes('.') ||
    segment.includes(':') ||
    segment === 'localhost' ||
    segment !== segment.toLowerCase()
  );
}

export function parseReference(input: string): Reference {
  const text = input.trim();
  if (text.length === 0) throw invalid(input, 'it is empty');
  if (text.includes('://')) throw invalid(input, 'leave out the scheme (no "https://")');

  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      parseDigest(digest);
    } catch (err) {
      throw invalid(input, (err as Error).message);
    }
  }

  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.indexOf(':', lastSlash + 1);
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    validateTag(tag, input);
  }

  let registry = DOCKER_HUB;
  let repository = rest;
  const firstSlash = rest.indexOf('/');
  if (firstSlash >= 0 && looksLikeRegistry(rest.slice(0, firstSlash))) {
    registry = rest.slice(0, firstSlash);
    repository = rest.slice(firstSlash + 1);
    if (!HOST.test(registry)) throw invalid(input, `bad registry host "${registry}"`);
  } else if (firstSlash < 0 && registry === DOCKER_HUB) {
    // Docker Hub's official images live under library/.
    repository = `library/${rest}`;
  }
  if (registry === 'index.docker.io') registry = DOCKER_HUB;
  validateRepository(repository, input);

  return { registry, repository, ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) };
}

/**
 * Checks a reference built by hand (not by parseReference) against the same rules: registry,
 * repository, tag and digest. `needsTarget`: it must name a tag or a digest (a copy's source).
 */
export function validateReference(ref: Reference, needsTarget = false): void {
  const text = formatReference(ref);
  if (!HOST.test(ref.registry)) throw invalid(text, `bad registry host "${ref.registry}"`);
  validateRepository(ref.repository, text);
  if (ref.tag !== undefined) validateTag(ref.tag, text);
  if (ref.digest !== undefined) {
    try {
      parseDigest(ref.digest);
    } catch (err) {
      throw invalid(text, (err as Error).message);
    }
  }
  if (needsTarget) manifestReference(ref);
}

export function formatReference(ref: Reference): string {
  let out = `${ref.registry}/${ref.repository}`;
  if (ref.tag !== undefined) out += `:${ref.tag}`;
  if (ref.digest !== undefined) out += `@${ref.digest}`;
  return out;
}

/** The tag or digest to ask a registry for; a digest wins because it cannot move. */
export function manifestReference(ref: Reference): string {
  const target = ref.digest ?? ref.tag;
  if (target === undefined) throw invalid(formatReference(ref), 'it names neither a tag nor a digest');
  return target;
}

export function withTag(ref: Reference, tag: string | undefined): Reference {
  const { tag: _old, ...rest } = ref;
  return tag === undefined ? rest : { ...rest, tag };
}

export function withDigest(ref: Reference, digest: string | undefined): Reference {
  const { digest: _old, ...rest } = ref;
  return digest === undefined ? rest : { ...rest, digest };
}
