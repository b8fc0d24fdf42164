import type { RepositoryMapping } from '../config/config';
import { validateRepository } from '../core/reference';
import { MirrorError } from '../errors';

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
      {
        cause: err,
      },
    );
  }
  return name;
}
