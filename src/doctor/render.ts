import { forTerminal } from '../cli/terminal';
import type { CheckResult, CheckStatus } from './check';

const SYMBOL: Record<CheckStatus, string> = { ok: '✓', fail: '✗', warn: '!', skipped: '-' };
const COLOUR: Record<CheckStatus, string> = {
  ok: '\x1b[32m',
  fail: '\x1b[31m',
  warn: '\x1b[33m',
  skipped: '\x1b[2m',
};
const RESET = '\x1b[0m';
const ID_WIDTH = 34;

/**
 * One check for a terminal: `✓ id  detail`, and under a failure or warning its fix, indented. Text
 * from AWS and registries is escaped: it reaches the terminal as visible characters only.
 */
export function renderResult(r: CheckResult, colour: boolean): string {
  const symbol = colour ? `${COLOUR[r.status]}${SYMBOL[r.status]}${RESET}` : SYMBOL[r.status];
  const lines = [`${symbol} ${r.id.padEnd(ID_WIDTH)} ${forTerminal(r.detail)}`.trimEnd()];
  if (r.fix && r.status !== 'ok') {
    for (const line of r.fix.split('\n')) lines.push(`    ${forTerminal(line)}`.trimEnd());
  }
  return `${lines.join('\n')}\n`;
}

export function summaryLine(results: readonly CheckResult[]): string {
  const count = (s: CheckStatus) => results.filter((r) => r.status === s).length;
  const failed = count('fail');
  const warnings = count('warn');
  return (
    `${results.length} checks: ${count('ok')} ok, ${failed} failed, ${warnings} warning${warnings === 1 ? '' : 's'}, ` +
    `${count('skipped')} skipped\n`
  );
}
