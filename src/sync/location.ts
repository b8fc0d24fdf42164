import { validateRepository } from '../core/reference';
import { MirrorError } from '../errors';

/**
 * One side of `ecr-mirror sync`: a registry and, optionally, a repository prefix under it
 * (`REGISTRY[/PREFIX]`). The prefix selects the repository named so and those below it.
 */
export interface SyncLocation {
  registry: string;
  /** Whole path components, no trailing slash; empty for the whole registry. */
  prefix: string;
}

const HOST =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$/;

export function parseLocation(text: string, what: string): SyncLocation {
  const input = text.trim().replace(/\/+$/, '');
  const bad = (why: string): MirrorError =>
    new MirrorError(
      'INVALID_ARGUMENT',
      `${what} "${text}": ${why} (REGISTRY[/PREFIX], such as localhost:5000/team)`,
    );
  if (input.includes('://')) throw bad('leave out the scheme');
  const slash = input.indexOf('/');
  const registry = slash < 0 ? input : input.slice(0, slash);
  const prefix = slash < 0 ? '' : input.slice(slash + 1);
  if (input.includes('@') || prefix.includes(':')) {
    throw bad('a location names repositories, not a tag or a digest');
  }
  if (
    !HOST.test(registry) ||
    !(registry.includes('.') || registry.includes(':') || registry === 'localhost')
  ) {
    throw bad(`"${registry}" is not a registry host`);
  }
  if (prefix !== '') {
    try {
      validateRepository(prefix);
    } catch {
      throw bad(`"${prefix}" is not a repository prefix (lowercase path components of a-z 0-9 . _ -)`);
    }
  }
  return { registry, prefix };
}

export function formatLocation(l: SyncLocation): string {
  return l.prefix ? `${l.registry}/${l.prefix}` : l.registry;
}

/** Whether a source repository is under the location's prefix (or is the prefix itself). */
export function underPrefix(repository: string, prefix: string): boolean {
  return prefix === '' || repository === prefix || repository.startsWith(`${prefix}/`);
}

/**
 * The destination name of a source repository: the source prefix replaced by the destination's.
 * `team/api` from `a/team` to `b/mirror` is `mirror/api`; `team` itself is `mirror`. Without a
 * destination prefix the name keeps what follows the source prefix (or its last component, for the
 * prefix itself).
 */
export function mapRepository(repository: string, source: SyncLocation, destination: SyncLocation): string {
  const rest =
    source.prefix === ''
      ? repository
      : repository === source.prefix
        ? ''
        : repository.slice(source.prefix.length + 1);
  if (destination.prefix === '') return rest === '' ? (repository.split('/').pop() ?? repository) : rest;
  return rest === '' ? destination.prefix : `${destination.prefix}/${rest}`;
}
