/**
 * HTTP/1.1 response framing (RFC 9112) for pooled-get.ts: the status line and headers, then a body
 * framed by Content-Length, by chunked transfer coding, or by the end of the connection. Body bytes
 * come out as views of the input, never copied.
 */

/** Response headers larger than this are refused (node:http's default limit). */
const MAX_HEADER_BYTES = 16 * 1024;

interface ResponseHead {
  status: number;
  headers: Record<string, string>;
  /** HTTP/1.1 and no `Connection: close`: the server keeps the connection open after this one. */
  persistent: boolean;
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
    const end = this.headText.indexOf('\r\n\r\n');
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
      const line = state.line.replace(/\r?\n$/, '');
      state.line = '';
      if (state.step === 'data-crlf') {
        if (line !== '') throw parseError('chunk data longer than its size');
        state.step = 'size';
      } else if (state.step === 'size') {
        const size = /^([0-9a-fA-F]{1,15})[ \t]*(;.*)?$/.exec(line);
        if (!size) throw parseError(`bad chunk size line ${JSON.stringify(line.slice(0, 40))}`);
        state.left = Number.parseInt(size[1]!, 16);
        state.step = state.left === 0 ? 'trailer' : 'data';
      } else if (line === '') {
        this.complete = true; // the blank line after the (ignored) trailer fields
      }
    }
    return i;
  }
}

function parseHead(text: string): ResponseHead {
  const lines = text.split('\r\n');
  const status = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (!status)
    throw parseError(`not an HTTP/1.1 status line: ${JSON.stringify((lines[0] ?? '').slice(0, 40))}`);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw parseError(`bad header line ${JSON.stringify(line.slice(0, 40))}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  const persistent = status[1] === '1' && !/(^|,)\s*close\s*(,|$)/i.test(headers.connection ?? '');
  return { status: Number(status[2]), headers, persistent };
}

function framing(head: ResponseHead): BodyState {
  if (head.status === 204 || head.status === 304) return { kind: 'length', left: 0 };
  const coding = head.headers['transfer-encoding'];
  if (coding !== undefined) {
    if (/(^|,)\s*chunked\s*$/i.test(coding)) return { kind: 'chunked', step: 'size', left: 0, line: '' };
    return { kind: 'until-close' };
  }
  const length = head.headers['content-length'];
  if (length === undefined) return { kind: 'until-close' };
  if (!/^\d{1,15}$/.test(length))
    throw parseError(`bad Content-Length ${JSON.stringify(length.slice(0, 40))}`);
  return { kind: 'length', left: Number(length) };
}

function parseError(message: string): Error {
  return Object.assign(new Error(`malformed HTTP response: ${message}`), { code: 'HPE_INVALID_RESPONSE' });
}
