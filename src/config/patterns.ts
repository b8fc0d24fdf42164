/**
 * Glob patterns for repository and tag filters: `*` matches any run of characters (slashes too),
 * `?` one character; everything else is literal. `team/*` matches `team/api` and `team/a/b`.
 */
export function globToRegExp(pattern: string): RegExp {
  const body = pattern
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\/-]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`);
}

export interface Filter {
  include: readonly string[];
  exclude: readonly string[];
}

/** Included when some include pattern matches (none given: all) and no exclude pattern does. */
export function matchesFilter(value: string, filter: Filter): boolean {
  const included = filter.include.length === 0 || filter.include.some((p) => globToRegExp(p).test(value));
  return included && !filter.exclude.some((p) => globToRegExp(p).test(value));
}

/** Splits a comma-separated setting into trimmed, non-empty patterns. */
export function parsePatternList(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
}
