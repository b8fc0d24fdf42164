/**
 * The part of EventBridge's event-pattern language a mirror rule uses (exact values, `prefix`,
 * `anything-but`, `exists`), for the local stand-in's TestEventPattern. AWS evaluates the real thing.
 */
export function matchesPattern(pattern: unknown, event: unknown): boolean {
  if (typeof pattern !== 'object' || pattern === null || Array.isArray(pattern)) return false;
  for (const [key, expected] of Object.entries(pattern)) {
    const value = (event as Record<string, unknown> | undefined)?.[key];
    if (Array.isArray(expected)) {
      if (!expected.some((candidate) => matchesValue(candidate, value))) return false;
    } else if (typeof expected === 'object' && expected !== null) {
      if (typeof value !== 'object' || value === null || !matchesPattern(expected, value)) return false;
    } else {
      return false;
    }
  }
  return true;
}

function matchesValue(candidate: unknown, value: unknown): boolean {
  if (Array.isArray(value)) return value.some((v) => matchesValue(candidate, v));
  if (typeof candidate === 'object' && candidate !== null) {
    const rule = candidate as Record<string, unknown>;
    if ('prefix' in rule) return typeof value === 'string' && value.startsWith(String(rule.prefix));
    if ('exists' in rule) return (value !== undefined) === Boolean(rule.exists);
    if ('anything-but' in rule) {
      const but = rule['anything-but'];
      return Array.isArray(but) ? !but.includes(value) : but !== value;
    }
    return false;
  }
  return candidate === value;
}
