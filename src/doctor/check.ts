import { describeError } from '../errors';

/** The interface users script against: `ecr-mirror doctor --json` prints a list of these. */
export type CheckStatus = 'ok' | 'fail' | 'warn' | 'skipped';

export interface CheckResult {
  /** Stable: `aws.credentials`, `source.login`, `destination.<id>.push`, … */
  id: string;
  status: CheckStatus;
  /** One line. */
  detail: string;
  /** What to do: an IAM statement and where it goes, or a command. Null when nothing is to be done. */
  fix: string | null;
}

export interface Outcome {
  status: CheckStatus;
  detail: string;
  fix?: string;
}

export const ok = (detail: string): Outcome => ({ status: 'ok', detail });
export const warn = (detail: string, fix?: string): Outcome => ({
  status: 'warn',
  detail,
  ...(fix && { fix }),
});
export const fail = (detail: string, fix?: string): Outcome => ({
  status: 'fail',
  detail,
  ...(fix && { fix }),
});
/** Not applicable here (no KMS key, not deployed): says why; unlike a blocked check, blocks nothing. */
export const notApplicable = (detail: string): Outcome => ({ status: 'skipped', detail });

export interface Check {
  id: string;
  /** Checks whose failure makes this one pointless: it is then skipped, not failed. */
  needs: string[];
  run(): Promise<Outcome>;
}

/**
 * Runs the checks in order. A check whose need failed (or was itself skipped for that reason) is
 * skipped and says which; an unexpected exception is that check's failure, never the end of the run.
 */
export async function runChecks(
  checks: readonly Check[],
  onResult?: (result: CheckResult) => void,
): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const blocked = new Set<string>();
  for (const check of checks) {
    const cause = check.needs.find((id) => blocked.has(id));
    let outcome: Outcome;
    if (cause !== undefined) {
      outcome = { status: 'skipped', detail: `needs ${cause}` };
    } else {
      try {
        outcome = await check.run();
      } catch (err) {
        outcome = fail(`unexpected: ${describeError(err)}`);
      }
    }
    if (outcome.status === 'fail' || cause !== undefined) blocked.add(check.id);
    const result: CheckResult = {
      id: check.id,
      status: outcome.status,
      detail: oneLine(outcome.detail),
      fix: outcome.fix ?? null,
    };
    results.push(result);
    onResult?.(result);
  }
  return results;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
