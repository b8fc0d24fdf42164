import { validateRepository } from '../core/reference';
import { MirrorError } from '../errors';

/** How a destination names the repositories it receives (`DESTINATIONS[].repository`). */
export interface RepositoryMapping {
  /** Prepended to the source name: `mirror/` makes `team/api` into `mirror/team/api`. */
  addPrefix?: string;
  /** Removed from the start of the source name when present: whole path components, ending in `/`. */
  stripPrefix?: string;
  /** A rename template with `{repository}`, `{name}` (last path component), `{sourceAccount}`. */
  template?: string;
}

/** The placeholders a template may use; anything else in braces is refused at load. */
export const TEMPLATE_PLACEHOLDERS = ['{repository}', '{name}', '{sourceAccount}'] as const;

/** The destination repository name for a source repository, per a destination's mapping. */
export function mapRepository(source: string, mapping: RepositoryMapping, sourceAccountId: string): string {
  let name = source;
  if (mapping.template) {
    name = mapping.template
      .replaceAll('{repository}', source)
      .replaceAll('{name}', source.split('/').pop() ?? source)
      .replaceAll('{sourceAccount}', sourceAccountId);
  } else {
    if (
      mapping.stripPrefix &&
      name.startsWith(mapping.stripPrefix) &&
      name.length > mapping.stripPrefix.length
    ) {
      name = name.slice(mapping.stripPrefix.length);
    }
    if (mapping.addPrefix) name = `${mapping.addPrefix}${name}`;
  }
  try {
    validateRepository(name);
  } catch (err) {
    throw new MirrorError(
      'INVALID_CONFIG',
      `repository mapping turns "${source}" into an invalid name "${name}"`,
      { cause: err },
    );
  }
  return name;
}

const literal = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');

/**
 * Every name the mapping can produce, as a pattern. A destination in the source registry itself
 * writes names of this shape there, and their push events come back to us: a source repository that
 * matches is the mirror's own output and must not be mirrored again (`mirror/team/api` would become
 * `mirror/mirror/team/api`, and so on up to the name limit).
 */
export function mappedNamespace(mapping: RepositoryMapping, sourceAccountId: string): RegExp {
  if (mapping.template) {
    const body = mapping.template
      .split(/(\{repository\}|\{name\}|\{sourceAccount\})/)
      .map((part) => {
        if (part === '{repository}') return '.+';
        if (part === '{name}') return '[^/]+';
        if (part === '{sourceAccount}') return literal(sourceAccountId);
        return literal(part);
      })
      .join('');
    return new RegExp(`^${body}$`);
  }
  // Without addPrefix every name is a possible output (the load refuses that in the source registry).
  return new RegExp(`^${literal(mapping.addPrefix ?? '')}.+$`);
}

/**
 * A name the mapping leaves as it is, if there is one: mapped within the source registry, that name
 * would be copied onto itself. Names are tried from samples, then mapped again, which finds the
 * fixed point of every mapping this file can express (identity, `addPrefix` equal to `stripPrefix`,
 * a template such as `copies/{name}` on a name already under `copies/`).
 */
export function nameMappedOntoItself(
  mapping: RepositoryMapping,
  sourceAccountId: string,
  samples: readonly string[],
): string | undefined {
  for (const sample of samples) {
    let name = sample;
    for (let round = 0; round < 3; round++) {
      let mapped: string;
      try {
        mapped = mapRepository(name, mapping, sourceAccountId);
      } catch {
        break; // an invalid result is reported on its own
      }
      if (mapped === name) return name;
      name = mapped;
    }
  }
  return undefined;
}
