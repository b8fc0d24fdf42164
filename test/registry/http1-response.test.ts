import { get } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { ResponseParser } from '../../src/registry/http1-response';

/**
 * The hand-written HTTP/1.1 response reader that every blob download goes through, case by case:
 * what it accepts and what it refuses, fed whole and byte by byte, and the same verdict from
 * node:http's llhttp for every case but the few where RFC 9112 asks for more than llhttp does.
 */

interface Accepted {
  status: number;
  body: string;
  headers?: Record<string, string>;
  /** The connection may carry another request (default true). */
  reusable?: boolean;
}

/** A case: the raw answer, then what the reader makes of it (a RegExp: refused with that message). */
type Case = [name: string, answer: string, expected: Accepted | RegExp];

const CL = 'Content-Length: 2\r\n';
const CHUNKED = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';

const ACCEPTED: Case[] = [
  ['a plain answer', `HTTP/1.1 200 OK\r\n${CL}\r\nok`, { status: 200, body: 'ok' }],
  ['no reason phrase', `HTTP/1.1 200\r\n${CL}\r\nok`, { status: 200, body: 'ok' }],
  [
    'no space after the colon',
    `HTTP/1.1 200 OK\r\nX-A:1\r\n${CL}\r\nok`,
    { status: 200, body: 'ok', headers: { 'x-a': '1' } },
  ],
  [
    'a tab inside a value',
    `HTTP/1.1 200 OK\r\nX-A: a\tb\r\n${CL}\r\nok`,
    { status: 200, body: 'ok', headers: { 'x-a': 'a\tb' } },
  ],
  [
    'whitespace around a value',
    `HTTP/1.1 200 OK\r\nX-A: \t1\t \r\n${CL}\r\nok`,
    { status: 200, body: 'ok', headers: { 'x-a': '1' } },
  ],
  [
    'obs-text (a byte over 0x7f) in a value',
    `HTTP/1.1 200 OK\r\nX-A: caf\xe9\r\n${CL}\r\nok`,
    { status: 200, body: 'ok', headers: { 'x-a': 'caf\xe9' } },
  ],
  [
    'Content-Length with a leading zero and spaces',
    'HTTP/1.1 200 OK\r\nContent-Length:  02 \r\n\r\nok',
    { status: 200, body: 'ok' },
  ],
  [
    'a repeated header, joined',
    `HTTP/1.1 200 OK\r\nX-A: 1\r\nX-A: 2\r\n${CL}\r\nok`,
    { status: 200, body: 'ok', headers: { 'x-a': '1, 2' } },
  ],
  [
    'a repeated single-value header, the first kept',
    `HTTP/1.1 200 OK\r\nLocation: /a\r\nLocation: /b\r\nContent-Type: a\r\nContent-Type: b\r\n${CL}\r\nok`,
    { status: 200, body: 'ok', headers: { location: '/a', 'content-type': 'a' } },
  ],
  [
    'a header named constructor',
    `HTTP/1.1 200 OK\r\nconstructor: x\r\n${CL}\r\nok`,
    { status: 200, body: 'ok', headers: { constructor: 'x' } },
  ],
  [
    'a header named __proto__',
    `HTTP/1.1 200 OK\r\n__proto__: x\r\n${CL}\r\nok`,
    { status: 200, body: 'ok', headers: { __proto__: 'x' } },
  ],
  ['chunked', `${CHUNKED}2\r\nok\r\n0\r\n\r\n`, { status: 200, body: 'ok' }],
  [
    'chunked, hex sizes in capitals',
    `${CHUNKED}A\r\n0123456789\r\n0\r\n\r\n`,
    { status: 200, body: '0123456789' },
  ],
  [
    'chunked, sizes with leading zeros',
    `${CHUNKED}000000000000000002\r\nok\r\n0\r\n\r\n`,
    { status: 200, body: 'ok' },
  ],
  ['chunk extensions', `${CHUNKED}2;a=b;c;d="e f"\r\nok\r\n0;x=y\r\n\r\n`, { status: 200, body: 'ok' }],
  ['a trailer', `${CHUNKED}2\r\nok\r\n0\r\nX-T: 1\r\n\r\n`, { status: 200, body: 'ok' }],
  [
    'chunked after another coding',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
    { status: 200, body: 'ok' },
  ],
  [
    'chunked named twice',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
    { status: 200, body: 'ok' },
  ],
  [
    'a coding other than chunked last: the body ends with the connection',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nok',
    { status: 200, body: 'ok', reusable: false },
  ],
  [
    'no framing: the body ends with the connection',
    'HTTP/1.1 200 OK\r\n\r\nok',
    { status: 200, body: 'ok', reusable: false },
  ],
  [
    '100 Continue, then the answer',
    `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n${CL}\r\nok`,
    { status: 200, body: 'ok' },
  ],
  [
    '204 with a Content-Length: no body',
    'HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\n',
    { status: 204, body: '' },
  ],
  [
    'HTTP/1.0 with a length: not kept',
    `HTTP/1.0 200 OK\r\n${CL}\r\nok`,
    { status: 200, body: 'ok', reusable: false },
  ],
  [
    'Connection: close: not kept',
    `HTTP/1.1 200 OK\r\nConnection: close\r\n${CL}\r\nok`,
    { status: 200, body: 'ok', reusable: false },
  ],
  [
    'a control character in the reason phrase',
    `HTTP/1.1 200 O\x01K\r\n${CL}\r\nok`,
    { status: 200, body: 'ok' },
  ],
];

const REFUSED: Case[] = [
  ['a space before the colon', `HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok`, /bad header line/],
  [
    'a space before the colon, another header',
    `HTTP/1.1 200 OK\r\nX-A : 1\r\n${CL}\r\nok`,
    /bad header line/,
  ],
  ['an obs-fold line', `HTTP/1.1 200 OK\r\nX-A: 1\r\n  more\r\n${CL}\r\nok`, /obs-fold/],
  ['an obs-fold line with a tab', `HTTP/1.1 200 OK\r\nX-A: 1\r\n\tmore\r\n${CL}\r\nok`, /obs-fold/],
  ['a space before the first header', `HTTP/1.1 200 OK\r\n X-A: 1\r\n${CL}\r\nok`, /obs-fold/],
  [
    'Transfer-Encoding and Content-Length',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n2\r\nok\r\n0\r\n\r\n',
    /both Transfer-Encoding and Content-Length/,
  ],
  [
    'Transfer-Encoding and Content-Length in HTTP/1.0',
    'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\nok\r\n0\r\n\r\n',
    /both Transfer-Encoding and Content-Length/,
  ],
  ['Content-Length twice, the same', `HTTP/1.1 200 OK\r\n${CL}${CL}\r\nok`, /Content-Length given twice/],
  [
    'Content-Length twice, different',
    `HTTP/1.1 200 OK\r\n${CL}Content-Length: 3\r\n\r\nok`,
    /Content-Length given twice/,
  ],
  ['Content-Length as a list', 'HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok', /bad Content-Length/],
  ['a negative Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok', /bad Content-Length/],
  ['a signed Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok', /bad Content-Length/],
  ['an empty Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nok', /bad Content-Length/],
  [
    'a Content-Length past 2^64',
    'HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nok',
    /bad Content-Length/,
  ],
  ['bare LF line ends', 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok', /bare LF/],
  ['a bare LF after the status line', `HTTP/1.1 200 OK\n${CL}\r\nok`, /bare LF/],
  ['a bare CR inside the head', `HTTP/1.1 200 OK\r\nX-A: 1\rX-B: 2\r\n${CL}\r\nok`, /bare CR/],
  ['a control character in a value', `HTTP/1.1 200 OK\r\nX-A: a\x01b\r\n${CL}\r\nok`, /control character/],
  ['NUL in a value', `HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n${CL}\r\nok`, /control character/],
  ['DEL in a value', `HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\n${CL}\r\nok`, /control character/],
  ['a name that is not a token', `HTTP/1.1 200 OK\r\nX(A): 1\r\n${CL}\r\nok`, /bad header line/],
  ['an empty name', `HTTP/1.1 200 OK\r\n: 1\r\n${CL}\r\nok`, /bad header line/],
  ['a four-digit status', `HTTP/1.1 1000 OK\r\n${CL}\r\nok`, /status line/],
  ['HTTP/1.2', `HTTP/1.2 200 OK\r\n${CL}\r\nok`, /status line/],
  ['a lower-case protocol name', `http/1.1 200 OK\r\n${CL}\r\nok`, /status line/],
  ['an HTTP/0.9 answer (no head at all)', 'ok', /status line/],
  ['no space after the status', `HTTP/1.1 200OK\r\n${CL}\r\nok`, /status line/],
  ['two spaces before the status', `HTTP/1.1  200 OK\r\n${CL}\r\nok`, /status line/],
  ['a space after a chunk size', `${CHUNKED}2 \r\nok\r\n0\r\n\r\n`, /bad chunk size line/],
  ['a space before a chunk extension', `${CHUNKED}2 ;a=b\r\nok\r\n0\r\n\r\n`, /bad chunk size line/],
  [
    'a space after the semicolon of a chunk extension',
    `${CHUNKED}2; a=b\r\nok\r\n0\r\n\r\n`,
    /bad chunk size line/,
  ],
  [
    'a control character in a chunk extension',
    `${CHUNKED}2;a=\x01\r\nok\r\n0\r\n\r\n`,
    /bad chunk size line/,
  ],
  ['a tab after a chunk size', `${CHUNKED}2\t\r\nok\r\n0\r\n\r\n`, /bad chunk size line/],
  ['a chunk size past 2^53', `${CHUNKED}fffffffffffffffff\r\nok\r\n0\r\n\r\n`, /chunk size is too large/],
  ['a negative chunk size', `${CHUNKED}-2\r\nok\r\n0\r\n\r\n`, /bad chunk size line/],
  ['a chunk size with 0x', `${CHUNKED}0x2\r\nok\r\n0\r\n\r\n`, /bad chunk size line/],
  ['chunk data longer than its size', `${CHUNKED}2\r\nokXX0\r\n\r\n`, /chunk data longer than its size/],
  ['bare LF line ends in the chunk framing', `${CHUNKED}2\nok\n0\n\n`, /bare LF/],
  ['a trailer line that is not a field', `${CHUNKED}2\r\nok\r\n0\r\nbad trailer\r\n\r\n`, /bad trailer line/],
];

/** Refused here although llhttp takes them: RFC 9112 (or HTTP/1.x itself) says they are faulty. */
const STRICTER: Case[] = [
  [
    'chunked in an HTTP/1.0 answer (RFC 9112 6.1: faulty framing)',
    'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
    /Transfer-Encoding in an HTTP\/1.0 response/,
  ],
  ['a status under 100', `HTTP/1.1 099 OK\r\n${CL}\r\nok`, /not an HTTP status/],
  ['HTTP/2.0 in an HTTP/1 head', `HTTP/2.0 200 OK\r\n${CL}\r\nok`, /status line/],
  ['101 Switching Protocols, unasked', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n', /101/],
];

interface Outcome {
  status?: number;
  headers?: Record<string, string>;
  body: string;
  reusable?: boolean;
  error?: string;
}

/** Feeds `pieces` to a parser, then ends the connection, as pooled-get does. */
function parse(pieces: Buffer[]): Outcome {
  const parser = new ResponseParser();
  const out: Outcome = { body: '' };
  try {
    for (const piece of pieces) {
      const result = parser.feed(piece);
      if (result.head) {
        out.status = result.head.status;
        out.headers = result.head.headers;
      }
      for (const b of result.body) out.body += b.toString('latin1');
      if (result.error) throw result.error;
      if (result.done) break;
    }
  } catch (err) {
    return { body: out.body, error: (err as Error).message };
  }
  if (!parser.complete && !parser.endsWithConnection) return { body: out.body, error: 'incomplete' };
  out.reusable = parser.complete && parser.reusable;
  return out;
}

const whole = (answer: string): Buffer[] => [Buffer.from(answer, 'latin1')];
const byteByByte = (answer: string): Buffer[] =>
  [...Buffer.from(answer, 'latin1')].map((b) => Buffer.from([b]));

describe.each([
  ['whole', whole],
  ['byte by byte', byteByByte],
])('the reader, the answer %s', (_how, split) => {
  test.each(ACCEPTED)('accepts %s', (_name, answer, expected) => {
    const e = expected as Accepted;
    const out = parse(split(answer));
    expect(out.error).toBeUndefined();
    expect(out.status).toBe(e.status);
    expect(out.body).toBe(e.body);
    expect(out.reusable).toBe(e.reusable ?? true);
    expect(Object.getPrototypeOf(out.headers)).toBeNull();
    for (const [name, value] of Object.entries(e.headers ?? {})) {
      expect(Object.hasOwn(out.headers!, name)).toBe(true);
      expect(out.headers![name]).toBe(value);
    }
  });

  test.each([...REFUSED, ...STRICTER])('refuses %s', (_name, answer, expected) => {
    expect(parse(split(answer)).error).toMatch(expected as RegExp);
  });
});

/** What node:http (llhttp) makes of an answer: accepted with status and body, or refused. */
async function llhttp(answer: string): Promise<{ status?: number; body?: string; refused: boolean }> {
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => socket.end(Buffer.from(answer, 'latin1')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return await new Promise((resolve) => {
      const req = get(
        { host: '127.0.0.1', port: (server.address() as AddressInfo).port, agent: false },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => {
            body += d.toString('latin1');
          });
          res.on('end', () => resolve({ status: res.statusCode!, body, refused: false }));
          res.on('error', () => resolve({ refused: true }));
        },
      );
      req.on('error', () => resolve({ refused: true }));
    });
  } finally {
    server.close();
  }
}

describe('llhttp (node:http) gives the same verdict', () => {
  test.each(ACCEPTED)('accepts %s', async (_name, answer, expected) => {
    const e = expected as Accepted;
    expect(await llhttp(answer)).toEqual({ status: e.status, body: e.body, refused: false });
  });

  test.each(REFUSED)('refuses %s', async (_name, answer) => {
    expect((await llhttp(answer)).refused).toBe(true);
  });
});
