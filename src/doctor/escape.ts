/**
 * Text from a registry, AWS or the status table, made safe for a terminal: control characters
 * (escape sequences, carriage returns, bells, C1 codes) become visible `\xNN` / `\uNNNN` escapes.
 * Newlines are kept only where the caller splits lines itself.
 */
export function escapeTerminal(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, '0')}`
      : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
