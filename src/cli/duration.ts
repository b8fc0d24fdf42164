import { MirrorError } from '../errors';

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parses `90s`, `30m`, `24h`, `7d`, `2w` into milliseconds. */
export function parseDuration(value: string, setting: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([smhdw])$/.exec(value.trim());
  if (!m) throw new MirrorError('INVALID_ARGUMENT', `${setting} must be a duration such as 30m, 24h or 7d`);
  return Math.round(Number(m[1]) * UNITS[m[2]!]!);
}
