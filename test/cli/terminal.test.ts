import { forTerminal } from '../../src/cli/terminal';

/** Whatever a registry or the status table holds, a terminal shows it on one line and acts on none of it. */

test.each([
  ['a line break that forges a second line', 'refused\necr-mirror: OK', 'refused\\necr-mirror: OK'],
  ['a carriage return that overwrites the line', 'bad\rgood', 'bad\\rgood'],
  ['an ANSI colour', '\x1b[32mgreen\x1b[0m', '\\x1b[32mgreen\\x1b[0m'],
  ['an OSC window title', '\x1b]0;owned\x07', '\\x1b]0;owned\\x07'],
  ['a C1 CSI (one byte)', '\u009b2J', '\\x9b2J'],
  ['DEL and NUL', 'a\x7fb\x00c', 'a\\x7fb\\x00c'],
  ['a tab', 'a\tb', 'a\\tb'],
  ['a right-to-left override', 'invoice\u202etxt.exe', 'invoice\\u202etxt.exe'],
  ['Unicode line and paragraph separators', 'a\u2028b\u2029c', 'a\\u2028b\\u2029c'],
])('%s is shown, not acted on', (_name, input, shown) => {
  expect(forTerminal(input)).toBe(shown);
});

test('printable text in any script passes unchanged', () => {
  const text = 'GET manifest team/api:v1 — 404 «MANIFEST_UNKNOWN» café 日本語 ✓ 🐳 \\x1b (already escaped)';
  expect(forTerminal(text)).toBe(text);
});

test('for every code point, the result holds no character a terminal acts on', () => {
  let all = '';
  for (let code = 0; code < 0x3000; code++) all += String.fromCharCode(code);
  const shown = forTerminal(all);
  const acted = [...shown].filter((c) => {
    const code = c.codePointAt(0)!;
    return (
      code < 0x20 ||
      (code >= 0x7f && code <= 0x9f) ||
      [0x61c, 0x200e, 0x200f, 0x2028, 0x2029].includes(code) ||
      (code >= 0x202a && code <= 0x202e) ||
      (code >= 0x2066 && code <= 0x2069)
    );
  });
  expect(acted).toEqual([]);
  expect(shown.split('\n')).toHaveLength(1);
});
