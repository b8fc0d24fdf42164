import { createHash } from 'node:crypto';
import { MirrorError } from '../errors';

/** Digest algorithms we can verify, with the hex length of their encoded part. */
const ALGORITHMS = { sha256: 64, sha512: 128 } as const;
export type DigestAlgorithm = keyof typeof ALGORITHMS;

// OCI image-spec descriptor grammar: algorithm ":" encoded.
const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
}

export function parseDigest(digest: string): ParsedDigest {
  if (!DIGEST_GRAMMAR.test(digest)) {
    throw new MirrorError('INVALID_REFERENCE', `invalid digest "${digest}": expected <algorithm>:<hex>`);
  }
  const [algorithm, hex] = digest.split(':') as [string, string];
  if (!(algorithm in ALGORITHMS)) {
    throw new MirrorError('INVALID_REFERENCE', `unsupported digest algorithm "${algorithm}" in "${digest}"`);
  }
  const expected = ALGORITHMS[algorithm as DigestAlgorithm];
  if (hex.length !== expected || !/^[a-f0-9]+$/.test(hex)) {
    throw new MirrorError(
      'INVALID_REFERENCE',
      `invalid digest "${digest}": ${algorithm} needs ${expected} lowercase hex characters`,
    );
  }
  return { algorithm: algorithm as DigestAlgorithm, hex };
}

export function isDigest(value: string): boolean {
  try {
    parseDigest(value);
    return true;
  } catch {
    return false;
  }
}

/** The digest of some bytes, in the algorithm of `like` (sha256 unless told otherwise). */
export function digestOf(bytes: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}
