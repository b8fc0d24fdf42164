import {
  formatReference,
  manifestReference,
  parseReference,
  validateReference,
  withTag,
} from '../../src/core/reference';
import { MirrorError } from '../../src/errors';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('parseReference', () => {
  test.each([
    ['localhost:5000/app:1.0', { registry: 'localhost:5000', repository: 'app', tag: '1.0' }],
    [
      '123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app/api:v2',
      { registry: '123456789012.dkr.ecr.eu-west-1.amazonaws.com', repository: 'team/app/api', tag: 'v2' },
    ],
    [`127.0.0.1:5001/app@${DIGEST}`, { registry: '127.0.0.1:5001', repository: 'app', digest: DIGEST }],
    [`ghcr.io/org/app:1@${DIGEST}`, { registry: 'ghcr.io', repository: 'org/app', tag: '1', digest: DIGEST }],
    ['alpine:3.20', { registry: 'docker.io', repository: 'library/alpine', tag: '3.20' }],
    ['bitnami/redis', { registry: 'docker.io', repository: 'bitnami/redis' }],
    ['[::1]:5000/a_b__c-d.e/x:T_1.-z', { registry: '[::1]:5000', repository: 'a_b__c-d.e/x', tag: 'T_1.-z' }],
  ])('%s', (input, expected) => {
    expect(parseReference(input)).toEqual(expected);
  });

  test.each([
    ['', 'empty'],
    ['https://host/app:1', 'scheme'],
    ['host.io/App:1', 'bad repository name "App"'],
    ['host.io/app-:1', 'bad repository name'],
    ['host.io/a//b', 'bad repository name'],
    ['host.io/app:.bad', 'bad tag ".bad"'],
    [`host.io/app:${'x'.repeat(129)}`, 'bad tag'],
    ['host.io/app@sha256:abc', 'sha256 needs 64'],
    [`host.io/app@md5:${'a'.repeat(32)}`, 'unsupported digest algorithm'],
    [`host.io/app@sha256:${'A'.repeat(64)}`, 'lowercase hex'],
    [`host.io/${'a'.repeat(256)}`, 'longer than 255'],
    ['bad_host.io/app', 'bad registry host'],
  ])('rejects %j (%s)', (input, why) => {
    let caught: unknown;
    try {
      parseReference(input);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(MirrorError);
    expect((caught as MirrorError).code).toBe('INVALID_REFERENCE');
    expect((caught as MirrorError).message).toContain(why);
  });

  test('round-trips through formatReference', () => {
    const text = `reg.example.com:8443/a/b/c:tag@${DIGEST}`;
    expect(formatReference(parseReference(text))).toBe(text);
  });

  test('a digest wins over a tag when asking the registry', () => {
    expect(manifestReference(parseReference(`h.io/a:1@${DIGEST}`))).toBe(DIGEST);
    expect(manifestReference(parseReference('h.io/a:1'))).toBe('1');
    expect(() => manifestReference(parseReference('h.io/a'))).toThrow(/neither a tag nor a digest/);
  });

  test('withTag returns a copy', () => {
    const ref = parseReference('h.io/a:1');
    const other = withTag(ref, '2');
    expect(ref.tag).toBe('1');
    expect(other.tag).toBe('2');
    expect(withTag(ref, undefined)).toEqual({ registry: 'h.io', repository: 'a' });
  });

  test('validateReference holds a reference built by hand to the rules of the parser', () => {
    expect(() => validateReference(parseReference(`h.io/a:1@${DIGEST}`), true)).not.toThrow();
    expect(() => validateReference({ registry: 'h.io', repository: 'a' })).not.toThrow();
    for (const ref of [
      { registry: 'h.io', repository: 'a' },
      { registry: 'h.io', repository: 'a', tag: '-x' },
      { registry: 'h.io', repository: 'A' },
      { registry: 'h io', repository: 'a', tag: '1' },
      { registry: 'h.io', repository: 'a', digest: 'sha256:zz' },
    ]) {
      expect(() => validateReference(ref, true)).toThrow(
        expect.objectContaining({ code: 'INVALID_REFERENCE' }),
      );
    }
  });
});
