/**
 * Characters a terminal acts on rather than shows: C0 controls (line breaks, ESC, BEL), DEL, C1
 * controls (a lone 0x9b is a CSI), the Unicode line and paragraph separators, and the bidirectional
 * marks, embeddings, overrides and isolates that reorder what follows them.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Text that came from a registry, an AWS API or the status table, made safe to print: every
 * character a terminal would act on is shown as an escape (`\n`, `\x1b`, `\u202e`), so a message
 * stays on its one line and cannot forge another, recolour the screen or retitle the window.
 * Everything printable, in any script, passes unchanged. JSON output does not need it (JSON escapes
 * control characters itself) and must stay exact.
 */
export function forTerminal(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const named = NAMED[c];
    if (named) return named;
    const code = c.charCodeAt(0);
    return code < 0x100
      ? `\\x${code.toString(16).padStart(2, '0')}`
      : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
