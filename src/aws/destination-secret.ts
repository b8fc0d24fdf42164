import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { MirrorError } from '../errors';
import { awsError } from './errors';

/** What a destination's secret holds: a registry login, or access keys for an ECR registry. */
export type SecretCredentials =
  | { kind: 'password'; username: string; password: string }
  | { kind: 'access-keys'; accessKeyId: string; secretAccessKey: string; sessionToken?: string };

/** How long a secret's value is used before it is read again: a rotation is picked up within this. */
export const SECRET_TTL_MS = 10 * 60_000;
/** Refusals within this long of a re-read share it: many requests refused at once read the secret once. */
const REFRESH_SHARED_MS = 10_000;

export interface DestinationSecretOptions {
  ttlMs?: number;
  now?: () => number;
}

/**
 * A destination's credentials in Secrets Manager, read with the function's own role. Cached for
 * SECRET_TTL_MS, so a rotated secret is picked up without a redeploy; `refresh` reads it again at
 * once, for when a registry refused the cached value. Concurrent callers share one read. The value
 * never appears in an error message.
 */
export class DestinationSecret {
  private cached: { value: SecretCredentials; readAt: number } | undefined;
  private pending: Promise<SecretCredentials> | undefined;
  private lastRefresh: { at: number; changed: Promise<boolean> } | undefined;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(
    private readonly client: Pick<SecretsManagerClient, 'send'>,
    readonly secretArn: string,
    options: DestinationSecretOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? SECRET_TTL_MS;
    this.now = options.now ?? Date.now;
  }

  /** The current value: cached, or read when older than the TTL. */
  async get(): Promise<SecretCredentials> {
    if (this.cached && this.now() - this.cached.readAt < this.ttlMs) return this.cached.value;
    return this.read();
  }

  /**
   * Reads the secret again, after a registry or AWS refused its value. Resolves true when the value
   * changed (trying again can help). Refusals that come together share one read.
   */
  refresh(): Promise<boolean> {
    const recent = this.lastRefresh;
    if (recent && this.now() - recent.at < REFRESH_SHARED_MS) return recent.changed;
    const before = this.cached?.value;
    const changed = this.read().then(
      (value) => JSON.stringify(value) !== JSON.stringify(before),
      () => false,
    );
    this.lastRefresh = { at: this.now(), changed };
    return changed;
  }

  private read(): Promise<SecretCredentials> {
    this.pending ??= this.fetch().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async fetch(): Promise<SecretCredentials> {
    let text: string | undefined;
    try {
      const out = await this.client.send(new GetSecretValueCommand({ SecretId: this.secretArn }));
      text = out.SecretString;
    } catch (err) {
      throw awsError(`secretsmanager:GetSecretValue on ${this.secretArn}`, err);
    }
    const value = parseSecret(text, this.secretArn);
    this.cached = { value, readAt: this.now() };
    return value;
  }
}

/** Reads a secret's JSON; an error names the secret and what is wrong, never a value. */
export function parseSecret(text: string | undefined, secretArn: string): SecretCredentials {
  const bad = (why: string): never => {
    throw new MirrorError(
      'INVALID_CONFIG',
      `secret ${secretArn}: ${why}; it must hold {"username","password"} or {"accessKeyId","secretAccessKey"} as JSON`,
    );
  };
  if (text === undefined) return bad('has no SecretString (a binary secret)');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return bad('is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    return bad('is not a JSON object');
  const o = parsed as Record<string, unknown>;
  const str = (key: string) => (typeof o[key] === 'string' && o[key] !== '' ? (o[key] as string) : undefined);
  if ('accessKeyId' in o || 'secretAccessKey' in o) {
    const accessKeyId = str('accessKeyId');
    const secretAccessKey = str('secretAccessKey');
    if (!accessKeyId || !secretAccessKey) return bad('needs both accessKeyId and secretAccessKey as strings');
    const sessionToken = str('sessionToken');
    return { kind: 'access-keys', accessKeyId, secretAccessKey, ...(sessionToken && { sessionToken }) };
  }
  const username = str('username');
  const password = str('password');
  if (!username || !password) return bad('needs both username and password as strings');
  return { kind: 'password', username, password };
}
