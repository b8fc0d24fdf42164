import { MirrorError } from '../errors';

export interface Credentials {
  username: string;
  password: string;
}

/**
 * Where a registry's credentials come from: fixed (`--src-creds`), ECR's GetAuthorizationToken, a
 * Secrets Manager secret, or none (anonymous). Called before each handshake, so a provider can
 * refresh what expires.
 */
export type CredentialProvider = (() => Promise<Credentials | undefined>) & {
  /**
   * Called when the registry (or its token server) refused what the provider gave: read the
   * credentials again from where they come from (a rotated secret). Resolves true when asking again
   * can help; the request is then tried once more. Without it a refusal is final.
   */
  refresh?: () => Promise<boolean>;
};

export const anonymous: CredentialProvider = async () => undefined;

export function staticCredentials(creds: Credentials): CredentialProvider {
  return async () => creds;
}

/** Parses `USER:PASS`, splitting on the first colon as Docker's credential helpers do. */
export function parseCredentials(value: string, setting: string): Credentials {
  const colon = value.indexOf(':');
  if (colon <= 0) {
    throw new MirrorError('INVALID_ARGUMENT', `${setting} must be USER:PASSWORD`);
  }
  return { username: value.slice(0, colon), password: value.slice(colon + 1) };
}

export function basicAuthorization(creds: Credentials): string {
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses a `WWW-Authenticate` header (RFC 7235): `Bearer realm="…",service="…",scope="a,b"`.
 * Quoted values may hold commas; several challenges may share one header.
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  // Parameters first: `name = value` may have spaces around `=` (RFC 7235 BWS), which would otherwise
  // read as a new scheme. A scheme may stand alone before a comma (`Negotiate, Basic realm="r"`).
  const re = /\s*([\w-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^,\s]*)\s*,?|\s*([A-Za-z][\w-]*)(?:\s+|\s*,|$)/gy;
  let current: Challenge | undefined;
  let m: RegExpExecArray | null;
  let pos = 0;
  while (pos < header.length) {
    re.lastIndex = pos;
    m = re.exec(header);
    if (!m || m[0].length === 0) {
      pos++;
      continue;
    }
    pos = re.lastIndex;
    if (m[1] !== undefined) {
      const value = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : (m[2] ?? '');
      if (current) current.params[m[1].toLowerCase()] = value;
    } else if (m[4] !== undefined) {
      current = { scheme: m[4].toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}

/** The token endpoint's answer (Docker token spec); either field name is in use. */
export interface TokenResponse {
  token?: string;
  access_token?: string;
  expires_in?: number;
}
