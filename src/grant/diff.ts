/**
 * A unified diff of two short texts (repository policies: tens of lines), by longest common
 * subsequence, with three lines of context around each change.
 */
export function unifiedDiff(
  before: string,
  after: string,
  labels: { before: string; after: string },
): string {
  const lines = (text: string): string[] => (text === '' ? [] : text.replace(/\n$/, '').split('\n'));
  const a = lines(before);
  const b = lines(after);
  // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
  const lcs = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  type Line = { op: ' ' | '-' | '+'; text: string; ai: number; bi: number };
  const ops: Line[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      ops.push({ op: ' ', text: a[i]!, ai: i++, bi: j++ });
    } else if (i < a.length && (j >= b.length || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      ops.push({ op: '-', text: a[i]!, ai: i++, bi: j });
    } else {
      ops.push({ op: '+', text: b[j]!, ai: i, bi: j++ });
    }
  }
  const changed = ops.map((l, n) => (l.op !== ' ' ? n : -1)).filter((n) => n >= 0);
  if (changed.length === 0) return '';
  const out = [`--- ${labels.before}`, `+++ ${labels.after}`];
  const CONTEXT = 3;
  let start = 0;
  while (start < changed.length) {
    let end = start;
    while (end + 1 < changed.length && changed[end + 1]! - changed[end]! <= 2 * CONTEXT) end++;
    const from = Math.max(0, changed[start]! - CONTEXT);
    const to = Math.min(ops.length - 1, changed[end]! + CONTEXT);
    const hunk = ops.slice(from, to + 1);
    const aCount = hunk.filter((l) => l.op !== '+').length;
    const bCount = hunk.filter((l) => l.op !== '-').length;
    const aStart = aCount === 0 ? hunk[0]!.ai : hunk[0]!.ai + 1;
    const bStart = bCount === 0 ? hunk[0]!.bi : hunk[0]!.bi + 1;
    out.push(`@@ -${aStart},${aCount} +${bStart},${bCount} @@`);
    for (const l of hunk) out.push(`${l.op}${l.text}`);
    start = end + 1;
  }
  return `${out.join('\n')}\n`;
}
