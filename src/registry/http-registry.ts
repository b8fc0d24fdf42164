import type { Readable } from 'node:stream';
import type { Descriptor } from '../core/descriptor';
import { digestOf, isDigest, parseDigest } from '../core/digest';
import { MAX_MANIFEST_BYTES, type Manifest, parseManifest } from '../core/manifest';
import { MANIFEST_MEDIA_TYPES, MediaType, normalizeMediaType } from '../core/media-types';
import { REFERRER_LIMITS } from '../core/referrers';
import { type ErrorCode, MirrorError } from '../errors';
import { redactUrl } from './errors';
import type {
  BlobSource,
  CallOptions,
  GetBlobOptions,
  PutBlobOptions,
  PutBlobResult,
  PutManifestResult,
  RegistryClient,
} from './registry';
import { withRetry } from './retry';
import {
  header,
  type RegistryRequest,
  type RegistryResponse,
  type RequestKind,
  Transport,
  type TransportOptions,
  transportError,
} from './transport';
import { BlobUploader, type UploadMode } from './upload';
import { VerifyingStream } from './verify';

const ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');
/** A page of tags or repositories (1,000 names) is a few hundred KB; an endless one stops here. */
const MAX_PAGE_BYTES = 4 * 1024 * 1024;
/** The token scope of `/v2/_catalog` (distribution's token auth, Harbor, GitLab). */
const CATALOG_SCOPE = 'registry:catalog:*';

export interface HttpRegistryOptions extends TransportOptions {
  host: string;
  uploadMode?: UploadMode;
  chunkBytes?: number;
}

/** A RegistryClient over the OCI distribution API. */
export class HttpRegistry implements RegistryClient {
  readonly host: string;
  private readonly transport: Transport;
  private readonly uploader: BlobUploader;
  /** The registry answered a referrers request with 404: it has no referrers API. */
  private noReferrersApi = false;

  constructor(options: HttpRegistryOptions) {
    this.host = options.host;
    this.transport = new Transport(options);
    this.uploader = new BlobUploader(this.transport, options.uploadMode, options.chunkBytes);
  }

  get counts(): Readonly<Record<RequestKind, number>> {
    return this.transport.counts;
  }

  async headManifest(
    repository: string,
    reference: string,
    options: CallOptions = {},
  ): Promise<Descriptor | undefined> {
    const what = `HEAD manifest ${repository}:${reference}`;
    const res = await this.transport.send({
      ...signalOf(options),
      method: 'HEAD',
      url: `/v2/${repository}/manifests/${reference}`,
      repository,
      headers: { accept: ACCEPT },
      expect: [200, 404],
      kind: 'manifest',
      what,
    });
    await res.body.dump();
    if (res.status === 404) return undefined;
    const digest = header(res, 'docker-content-digest');
    const mediaType = normalizeMediaType(header(res, 'content-type'));
    const size = Number(header(res, 'content-length'));
    if (!digest || !isDigest(digest) || !mediaType || !Number.isSafeInteger(size)) {
      // Some registries leave these out of HEAD answers: the GET tells all.
      const manifest = await this.getManifest(repository, reference, options);
      return { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.byteLength };
    }
    if (isDigest(reference) && digest !== reference) {
      throw new MirrorError('DIGEST_MISMATCH', `${what}: the registry announced ${digest}`);
    }
    return { mediaType, digest, size };
  }

  async getManifest(repository: string, reference: string, options: CallOptions = {}): Promise<Manifest> {
    const what = `GET manifest ${repository}:${reference}`;
    const { bytes, announced, contentType } = await this.getWithRetry(
      {
        ...signalOf(options),
        url: `/v2/${repository}/manifests/${reference}`,
        repository,
        headers: { accept: ACCEPT },
        expect: [200],
        kind: 'manifest',
        what,
      },
      async (res) => ({
        bytes: await readManifestBody(res, what),
        announced: header(res, 'docker-content-digest'),
        contentType: header(res, 'content-type'),
      }),
    );
    if (isDigest(reference)) {
      const actual = digestOf(bytes, parseDigest(reference).algorithm);
      if (actual !== reference) {
        throw new MirrorError('DIGEST_MISMATCH', `${what}: the bytes received hash to ${actual}`);
      }
    }
    const manifest = parseManifest(bytes, contentType);
    if (announced?.startsWith('sha256:') && announced !== manifest.digest) {
      throw new MirrorError(
        'DIGEST_MISMATCH',
        `${what}: the registry announced ${announced} but the bytes hash to ${manifest.digest}`,
      );
    }
    return manifest;
  }

  async putManifest(
    repository: string,
    reference: string,
    manifest: Manifest,
    options: CallOptions = {},
  ): Promise<PutManifestResult> {
    const what = `PUT manifest ${repository}:${reference}`;
    const res = await this.transport.send({
      ...signalOf(options),
      method: 'PUT',
      url: `/v2/${repository}/manifests/${reference}`,
      repository,
      push: true,
      headers: { 'content-type': manifest.mediaType },
      body: Buffer.from(manifest.bytes.buffer, manifest.bytes.byteOffset, manifest.bytes.byteLength),
      expect: [200, 201, 202],
      kind: 'manifest',
      what,
    });
    await res.body.dump();
    const digest = header(res, 'docker-content-digest') ?? manifest.digest;
    if (digest !== manifest.digest) {
      throw new MirrorError(
        'DIGEST_MISMATCH',
        `${what}: the registry stored it as ${digest}, not ${manifest.digest}`,
      );
    }
    const subject = header(res, 'oci-subject');
    return { digest, ...(subject !== undefined && { subject }) };
  }

  async deleteManifest(repository: string, digest: string, options: CallOptions = {}): Promise<void> {
    const res = await this.transport.send({
      ...signalOf(options),
      method: 'DELETE',
      url: `/v2/${repository}/manifests/${digest}`,
      repository,
      push: true,
      // Token registries authorize a DELETE with the `delete` action (distribution's token spec), which
      // pull and push do not include: without it the request is refused with 401 however the login may.
      scopes: [`repository:${repository}:delete`],
      expect: [200, 202, 204],
      kind: 'manifest',
      what: `DELETE manifest ${repository}@${digest}`,
    });
    await res.body.dump();
  }

  async hasBlob(repository: string, digest: string, options: CallOptions = {}): Promise<boolean> {
    const res = await this.transport.send({
      ...signalOf(options),
      method: 'HEAD',
      url: `/v2/${repository}/blobs/${digest}`,
      repository,
      expect: [200, 404],
      kind: 'blob',
      what: `HEAD blob ${repository}@${digest}`,
    });
    await res.body.dump();
    return res.status === 200;
  }

  async getBlob(repository: string, blob: Descriptor, options: GetBlobOptions = {}): Promise<Readable> {
    const what = `GET blob ${repository}@${blob.digest}`;
    const res = await this.transport.send({
      ...signalOf(options),
      method: 'GET',
      url: `/v2/${repository}/blobs/${blob.digest}`,
      repository,
      // A blob transfer has one retry loop, the copier's (it must start over after a break mid-body
      // anyway); retrying here too would send attempts² requests to a registry that keeps failing.
      once: true,
      pooledBody: true,
      size: blob.size,
      expect: [200],
      kind: 'blob',
      what,
    });
    const length = header(res, 'content-length');
    if (length !== undefined && Number(length) !== blob.size) {
      res.body.destroy();
      throw new MirrorError(
        'SIZE_MISMATCH',
        `${what}: the registry sends ${length} bytes, the descriptor says ${blob.size}`,
      );
    }
    const verified = new VerifyingStream(blob, options.onBytes, options.signal);
    // A break or a stall names the source it came from: the upload it feeds fails with this error.
    res.body.on('error', (err) => verified.destroy(transportError(`${what} (${redactUrl(res.url)})`, err)));
    verified.on('close', () => {
      if (!res.body.readableEnded) res.body.destroy();
    });
    res.body.pipe(verified);
    return verified;
  }

  putBlob(
    repository: string,
    blob: Descriptor,
    open: BlobSource,
    options: PutBlobOptions = {},
  ): Promise<PutBlobResult> {
    return this.uploader.upload(repository, blob, open, options.signal, options.mountFrom);
  }

  /**
   * The referrers API's list, every page followed and de-duplicated by digest. Bounded: more than
   * REFERRER_LIMITS.pages pages or perSubject referrers fail with LIMIT_EXCEEDED, and a next-page link
   * back to a page already read (a loop) with REGISTRY_ERROR.
   */
  async referrers(
    repository: string,
    digest: string,
    options: CallOptions = {},
  ): Promise<Descriptor[] | undefined> {
    // The OCI spec forbids a 404 from a registry that has the API: once seen, never asked again.
    if (this.noReferrersApi) return undefined;
    const what = `GET referrers ${repository}@${digest}`;
    const out = new Map<string, Descriptor>();
    const pages = new Pages(what);
    let url = `/v2/${repository}/referrers/${digest}`;
    for (let page = 1; ; page++) {
      if (page > REFERRER_LIMITS.pages) {
        throw new MirrorError('LIMIT_EXCEEDED', `${what}: more than ${REFERRER_LIMITS.pages} pages`);
      }
      const answer = await this.getWithRetry(
        {
          ...signalOf(options),
          url,
          repository,
          headers: { accept: MediaType.OciIndex },
          expect: [200, 400, 404, 405],
          kind: 'referrers',
          what,
        },
        async (res) => {
          const type = normalizeMediaType(header(res, 'content-type'));
          if (res.status !== 200 || type !== MediaType.OciIndex) {
            // No referrers API here (a 404 from distribution 2.x, or something that is not an index).
            if (res.status === 404 && page === 1) this.noReferrersApi = true;
            await res.body.dump();
            return undefined;
          }
          return { bytes: await readManifestBody(res, what), link: header(res, 'link'), at: res.url };
        },
      );
      if (!answer) return page === 1 ? undefined : [...out.values()];
      for (const d of parseManifest(answer.bytes, MediaType.OciIndex).manifests) {
        if (!out.has(d.digest)) out.set(d.digest, d);
      }
      if (out.size > REFERRER_LIMITS.perSubject) {
        throw new MirrorError(
          'LIMIT_EXCEEDED',
          `${what}: more than ${REFERRER_LIMITS.perSubject} referrers of one manifest`,
        );
      }
      const next = pages.next(answer.at, answer.link);
      if (!next) return [...out.values()];
      url = next;
    }
  }

  async listTags(repository: string, options: CallOptions = {}): Promise<string[]> {
    const what = `GET tags ${repository}`;
    const tags: string[] = [];
    const pages = new Pages(what);
    let url: string | undefined = `/v2/${repository}/tags/list?n=1000`;
    for (let page = 0; url !== undefined && page < 10_000; page++) {
      const answer: JsonPage<{ tags?: string[] | null }> = await this.getJsonPage(
        url,
        repository,
        what,
        options,
      );
      tags.push(...(answer.body.tags ?? []));
      url = pages.next(answer.at, answer.next);
    }
    return tags;
  }

  /**
   * One page of the registry's repository list (`/v2/_catalog`). Not part of RegistryClient: ECR does
   * not serve it (its inventory comes from the ECR API); local registries do.
   */
  async catalogPage(
    next?: string,
    options: CallOptions = {},
  ): Promise<{ repositories: string[]; nextToken?: string }> {
    // A token registry grants the catalog as its own resource (`registry:catalog:*`), not a repository.
    const answer = await this.getJsonPage<{ repositories?: string[] | null }>(
      next ?? '/v2/_catalog?n=1000',
      '',
      'GET catalog',
      options,
      [CATALOG_SCOPE],
    );
    const link = nextLink(answer.next);
    return {
      repositories: answer.body.repositories ?? [],
      ...(link !== undefined && { nextToken: new URL(link, answer.at).href }),
    };
  }

  /** A JSON page, the URL that answered, and its Link header (`Link: <…>; rel="next"`), if any. */
  private getJsonPage<T>(
    url: string,
    repository: string,
    what: string,
    options: CallOptions,
    scopes?: readonly string[],
  ): Promise<JsonPage<T>> {
    const req = {
      ...signalOf(options),
      url,
      repository,
      ...(scopes && { scopes }),
      expect: [200],
      kind: 'other',
      what,
    } as const;
    return this.getWithRetry(req, async (res) => {
      const text = Buffer.from(await readBody(res, what, MAX_PAGE_BYTES, 'LIMIT_EXCEEDED')).toString('utf8');
      const link = header(res, 'link');
      return { body: parseJson<T>(text, what), at: res.url, ...(link !== undefined && { next: link }) };
    });
  }

  /**
   * A GET whose body is read inside the retry loop: send() alone retries until the headers arrive, and
   * a connection that breaks mid-body (a reset, a truncated answer) deserves another try just as much.
   */
  private getWithRetry<T>(
    req: Omit<RegistryRequest, 'method' | 'once'>,
    read: (res: RegistryResponse) => Promise<T>,
  ): Promise<T> {
    // once: this loop is the only one, so a failing request is not sent attempts² times.
    return withRetry(
      this.transport.retryPolicy,
      async () => read(await this.transport.send({ ...req, method: 'GET', once: true })),
      undefined,
      req.signal,
    );
  }
}

const signalOf = (options: CallOptions): { signal?: AbortSignal } =>
  options.signal ? { signal: options.signal } : {};

/** A JSON answer; one that is not JSON says which request it answered, not just "Unexpected token". */
function parseJson<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    const shown = text.length > 80 ? `${text.slice(0, 80)}…` : text;
    throw new MirrorError('REGISTRY_ERROR', `${what}: the answer is not JSON: ${JSON.stringify(shown)}`, {
      cause: err,
    });
  }
}

interface JsonPage<T> {
  body: T;
  /** The URL that answered. */
  at: URL;
  /** Its Link header. */
  next?: string;
}

/** The pages of one listing: each next-page link resolved, and one back to a page read already refused. */
class Pages {
  private readonly read = new Set<string>();

  constructor(private readonly what: string) {}

  /** The absolute URL of the page after the one read from `at`, or undefined at the last page. */
  next(at: URL, link: string | undefined): string | undefined {
    this.read.add(at.href);
    const next = nextLink(link);
    if (next === undefined) return undefined;
    const url = new URL(next, at).href;
    if (this.read.has(url)) {
      throw new MirrorError(
        'REGISTRY_ERROR',
        `${this.what}: the next page link repeats a page already read (${redactUrl(url)}): a loop`,
      );
    }
    return url;
  }
}

const readManifestBody = (res: RegistryResponse, what: string): Promise<Uint8Array> =>
  readBody(res, what, MAX_MANIFEST_BYTES, 'MANIFEST_TOO_LARGE');

/** A whole body of at most `limit` bytes; past that it fails with `code` and drops the connection. */
async function readBody(
  res: RegistryResponse,
  what: string,
  limit: number,
  code: ErrorCode,
): Promise<Uint8Array> {
  const declared = Number(header(res, 'content-length'));
  if (Number.isFinite(declared) && declared > limit) {
    res.body.destroy();
    throw new MirrorError(code, `${what}: ${declared} bytes, over the ${limit}-byte limit`);
  }
  const parts: Buffer[] = [];
  let size = 0;
  try {
    for await (const part of res.body) {
      size += (part as Buffer).length;
      if (size > limit) {
        res.body.destroy();
        throw new MirrorError(code, `${what}: over the ${limit}-byte limit`);
      }
      parts.push(part as Buffer);
    }
  } catch (err) {
    throw transportError(what, err);
  }
  return Buffer.concat(parts, size);
}

/** `Link: </v2/…?last=x&n=100>; rel="next"` (RFC 5988), as used by tag lists and referrers. */
export function nextLink(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(value);
  return m?.[1];
}
