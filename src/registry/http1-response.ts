/**
 * HTTP/1.1 response framing (RFC 9112) for pooled-get.ts: the status line and headers, then a body
 * framed by Content-Length, by chunked transfer coding, or by the end of the connection. Body bytes
 * come out as views of the input, never copied.
 *
 * It refuses what llhttp (node:http's parser) refuses, and a little more where RFC 9112 says a
 * message is faulty: whitespace before a header's colon, obs-fold lines, control characters in
 * names or values, bare CR or LF, Transfer-Encoding together with Content-Length (or in an HTTP/1.0
 * answer), a repeated or malformed Content-Length, whitespace or junk in a chunk size, malformed chunk
 * extensions and trailers. A response that could be framed two ways is never read one way: that is
 * how a connection ends up out of step (response smuggling). test/registry/http1-response.test.ts
 * holds the table of cases, checked against node:http as well.
 */

/** Response headers larger than this are refused (node:http's default limit). */
const MAX_HEADER_BYTES = 16 * 1024;

/** RFC 9110 token: header names, chunk extension names and values. */
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/;
const FIELD_LINE = new RegExp(`^(${TOKEN}):[ \\t]*(.*?)[ \\t]*$`);
// biome-ignore lint/suspicious/noControlCharactersInRegex: what a field value must not hold
const BAD_VALUE = /[\u0000-\u0008\u000a-\u001f\u007f]/;
const CHUNK_SIZE_LINE = new RegExp(
  `^([0-9a-fA-F]+)((?:;${TOKEN}(?:=(?:${TOKEN}|"(?:[^"\\\\\\u0000-\\u0008\\u000a-\\u001f\\u007f]|\\\\[^\\u0000-\\u0008\\u000a-\\u001f\\u007f])*"))?)*)$`,
);

/**
 * Headers that hold one value: a repeat is dropped (the first counts), as node:http does. Others
 * are joined with ", ". A repeated Content-Length is refused outright.
 */
const SINGLE = new Set([
  'age',
  'authorization',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

interface ResponseHead {
  status: number;
  /** Lower-case names; an object without a prototype, so a header named `constructor` is just that. */
  headers: Record<string, string>;
  /** HTTP/1.1 and no `Connection: close`: the server keeps the connection open after this one. */
  persistent: boolean;
  http10: boolean;
}

export interface ParseResult {
  /** Set once, when the final (non-1xx) response head is complete. */
  head?: ResponseHead;
  /** Body bytes in this input, as views of it (chunk framing removed). */
  body: Buffer[];
  /** A framing error after the head: the body fails once the bytes before it are passed on. */
  error?: Error;
  /** The body is complete. */
  done: boolean;
}

type BodyState =
  | { kind: 'length'; left: number }
  | { kind: 'chunked'; step: 'size' | 'data' | 'data-crlf' | 'trailer'; left: number; line: string }
  | { kind: 'until-close' };

/** HTTP/1.1 response framing (RFC 9112), fed with what the socket reads. */
export class ResponseParser {
  complete = false;
  private headText = '';
  private head: ResponseHead | undefined;
  private body: BodyState | undefined;
  /** Bytes came after the end of the response: the connection is out of step. */
  private trailing = false;

  /** True when only the end of the connection can end the body. */
  get endsWithConnection(): boolean {
    return this.body?.kind === 'until-close';
  }

  /** The response is complete and the connection can carry another request. */
  get reusable(): boolean {
    return this.complete && !this.trailing && this.head?.persistent === true && !this.endsWithConnection;
  }

  feed(input: Buffer): ParseResult {
    const result: ParseResult = { body: [], done: false };
    let rest = input;
    while (!this.body && rest.length > 0) {
      rest = this.readHead(rest, result);
    }
    if (this.body && rest.length > 0 && !this.complete) {
      try {
        rest = rest.subarray(this.readBody(rest, result));
      } catch (err) {
        result.error = err as Error;
      }
    }
    if (this.body && this.body.kind === 'length' && this.body.left === 0) this.complete = true;
    if (this.complete && rest.length > 0) this.trailing = true;
    result.done = this.complete;
    return result;
  }

  private readHead(input: Buffer, result: ParseResult): Buffer {
    // Headers are ASCII; latin1 keeps one character per byte, so offsets carry over to the buffer.
    const start = this.headText.length;
    this.headText += input.toString('latin1');
    // Not even the start of an HTTP/1 status line (an HTTP/0.9 answer, another protocol): say so now
    // rather than wait for a head that never comes.
    const prefix = this.headText.slice(0, 7);
    if (prefix !== 'HTTP/1.'.slice(0, prefix.length)) {
      throw parseError(`not an HTTP/1.1 status line: ${JSON.stringify(this.headText.slice(0, 40))}`);
    }
    const end = this.headText.indexOf('\r\n\r\n');
    // Only the head: what follows it is body, which may hold any byte.
    checkLineEnds(end < 0 ? this.headText : this.headText.slice(0, end + 4), Math.max(0, start - 1));
    if (end < 0) {
      if (this.headText.length > MAX_HEADER_BYTES) throw parseError('response headers are too large');
      return input.subarray(input.length);
    }
    const text = this.headText.slice(0, end);
    const rest = input.subarray(end + 4 - start);
    this.headText = '';
    const head = parseHead(text);
    if (head.status < 200) return rest; // 100 Continue, 103 Early Hints: the real answer follows
    result.head = head;
    this.head = head;
    this.body = framing(head);
    if (this.body.kind === 'length' && this.body.left === 0) this.complete = true;
    return rest;
  }

  /** Reads body bytes from `input`; returns how many it used. */
  private readBody(input: Buffer, result: ParseResult): number {
    const state = this.body!;
    if (state.kind === 'until-close') {
      result.body.push(input);
      return input.length;
    }
    if (state.kind === 'length') {
      const take = Math.min(state.left, input.length);
      if (take > 0) result.body.push(input.subarray(0, take));
      state.left -= take;
      return take;
    }
    let i = 0;
    while (i < input.length && !this.complete) {
      if (state.step === 'data') {
        const take = Math.min(state.left, input.length - i);
        result.body.push(input.subarray(i, i + take));
        state.left -= take;
        i += take;
        if (state.left === 0) state.step = 'data-crlf';
        continue;
      }
      // Size lines, the CRLF after each chunk and the trailer section are short: read them as text.
      const nl = input.indexOf(10, i);
      const piece = input.toString('latin1', i, nl < 0 ? input.length : nl + 1);
      i = nl < 0 ? input.length : nl + 1;
      state.line += piece;
      if (state.line.length > MAX_HEADER_BYTES) throw parseError('chunk framing line is too long');
      if (nl < 0) continue;
      if (!state.line.endsWith('\r\n')) throw parseError('a line of the chunk framing ends in a bare LF');
      const line = state.line.slice(0, -2);
      state.line = '';
      if (line.includes('\r')) throw parseError('a bare CR in the chunk framing');
      if (state.step === 'data-crlf') {
        if (line !== '') throw parseError('chunk data longer than its size');
        state.step = 'size';
      } else if (state.step === 'size') {
        const size = CHUNK_SIZE_LINE.exec(line);
        if (!size) throw parseError(`bad chunk size line ${JSON.stringify(line.slice(0, 40))}`);
        const left = Number.parseInt(size[1]!, 16);
        if (!Number.isSafeInteger(left)) throw parseError('chunk size is too large');
        state.left = left;
        state.step = left === 0 ? 'trailer' : 'data';
      } else if (line === '') {
        this.complete = true; // the blank line after the trailer fields, which are checked, not kept
      } else if (!FIELD_LINE.test(line) || BAD_VALUE.test(line)) {
        throw parseError(`bad trailer line ${JSON.stringify(line.slice(0, 40))}`);
      }
    }
    return i;
  }
}

/** Every LF from `from` on follows a CR, and every CR is followed by an LF (or ends the text so far). */
function checkLineEnds(text: string, from: number): void {
  for (let at = text.indexOf('\n', from); at >= 0; at = text.indexOf('\n', at + 1)) {
    if (text[at - 1] !== '\r') throw parseError('a line of the response head ends in a bare LF');
  }
  for (let at = text.indexOf('\r', from); at >= 0; at = text.indexOf('\r', at + 1)) {
    if (at + 1 < text.length && text[at + 1] !== '\n') throw parseError('a bare CR in the response head');
  }
}

function parseHead(text: string): ResponseHead {
  const lines = text.split('\r\n');
  const status = STATUS_LINE.exec(lines[0] ?? '');
  if (!status)
    throw parseError(`not an HTTP/1.1 status line: ${JSON.stringify((lines[0] ?? '').slice(0, 40))}`);
  const code = Number(status[2]);
  if (code < 100) throw parseError(`status ${status[2]} is not an HTTP status`);
  if (code === 101) throw parseError('101 Switching Protocols, which no request of ours asks for');
  const headers: Record<string, string> = Object.create(null);
  for (const line of lines.slice(1)) {
    if (line.startsWith(' ') || line.startsWith('\t')) {
      throw parseError(`obs-fold (a header line continued on the next) ${JSON.stringify(line.slice(0, 40))}`);
    }
    const field = FIELD_LINE.exec(line);
    if (!field) throw parseError(`bad header line ${JSON.stringify(line.slice(0, 40))}`);
    const value = field[2]!;
    if (BAD_VALUE.test(value)) throw parseError(`a control character in header ${field[1]}`);
    const name = field[1]!.toLowerCase();
    const known = headers[name];
    if (known === undefined) headers[name] = value;
    else if (name === 'content-length') throw parseError('Content-Length given twice');
    else if (!SINGLE.has(name)) headers[name] = `${known}, ${value}`;
  }
  const http10 = status[1] === '0';
  const persistent = !http10 && !/(^|,)\s*close\s*(,|$)/i.test(headers.connection ?? '');
  return { status: code, headers, persistent, http10 };
}

function framing(head: ResponseHead): BodyState {
  if (head.status === 204 || head.status === 304) return { kind: 'length', left: 0 };
  const coding = head.headers['transfer-encoding'];
  const length = head.headers['content-length'];
  if (coding !== undefined) {
    // Two framings for one body: which one a proxy on the way used is anyone's guess (RFC 9112 6.3).
    if (length !== undefined) throw parseError('both Transfer-Encoding and Content-Length');
    // HTTP/1.0 has no transfer codings: such a message "MUST be treated as faulty" (RFC 9112 6.1).
    if (head.http10) throw parseError('Transfer-Encoding in an HTTP/1.0 response');
    if (/(^|,)\s*chunked\s*$/i.test(coding)) return { kind: 'chunked', step: 'size', left: 0, line: '' };
    return { kind: 'until-close' };
  }
  if (length === undefined) return { kind: 'until-close' };
  if (!/^\d{1,15}$/.test(length))
    throw parseError(`bad Content-Length ${JSON.stringify(length.slice(0, 40))}`);
  return { kind: 'length', left: Number(length) };
}

function parseError(message: string): Error {
  return Object.assign(new Error(`malformed HTTP response: ${message}`), { code: 'HPE_INVALID_RESPONSE' });
}
