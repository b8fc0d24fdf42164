import {
  BatchDeleteImageCommand,
  type BatchDeleteImageCommandOutput,
  CreateRepositoryCommand,
  DescribeRepositoriesCommand,
} from '@aws-sdk/client-ecr';
import type { RepositorySettings } from '../config/config';
import { MirrorError } from '../errors';
import type { RepositoryManager } from '../mirror/ports';
import type { EcrSender } from './ecr-auth';
import { awsError } from './errors';

/**
 * One destination's repositories over the ECR API: made sure of before a copy (created when
 * configured), and images deleted when deletion sync is on. What exists is remembered for the life
 * of the process, until a push finds the repository gone (`forget`).
 */
export class EcrRepositories implements RepositoryManager {
  private readonly known = new Set<string>();

  constructor(
    private readonly ecr: EcrSender,
    /** Names the destination in messages: `222222222222/eu-west-1`. */
    private readonly label: string,
  ) {}

  forget(repository: string): void {
    this.known.delete(repository);
  }

  async ensure(repository: string, s: RepositorySettings, create: boolean): Promise<'exists' | 'created'> {
    if (this.known.has(repository)) return 'exists';
    const what = `repository ${repository} in ${this.label}`;
    try {
      await this.ecr.send(new DescribeRepositoriesCommand({ repositoryNames: [repository] }));
      this.known.add(repository);
      return 'exists';
    } catch (err) {
      if ((err as { name?: string }).name !== 'RepositoryNotFoundException')
        throw awsError(`describe ${what}`, err);
    }
    if (!create) {
      throw new MirrorError(
        'NOT_FOUND',
        `${what} does not exist; create it, or set CREATE_REPOSITORIES=true so the mirror creates it`,
      );
    }
    try {
      await this.ecr.send(
        new CreateRepositoryCommand({
          repositoryName: repository,
          imageTagMutability: s.tagMutability,
          imageScanningConfiguration: { scanOnPush: s.scanOnPush },
          encryptionConfiguration:
            s.encryption.type === 'KMS'
              ? { encryptionType: 'KMS', ...(s.encryption.kmsKey && { kmsKey: s.encryption.kmsKey }) }
              : { encryptionType: 'AES256' },
          ...(Object.keys(s.tags).length > 0 && {
            tags: Object.entries(s.tags).map(([Key, Value]) => ({ Key, Value })),
          }),
        }),
      );
    } catch (err) {
      // Another worker created it first: just as good.
      if ((err as { name?: string }).name !== 'RepositoryAlreadyExistsException')
        throw awsError(`create ${what}`, err);
      this.known.add(repository);
      return 'exists';
    }
    this.known.add(repository);
    return 'created';
  }

  /** Deletes a tag, or an image by digest (with all its tags); an image already gone counts as deleted. */
  async deleteImage(repository: string, image: { tag?: string; digest?: string }): Promise<void> {
    const imageId = image.tag ? { imageTag: image.tag } : { imageDigest: image.digest };
    const what = `delete ${image.tag ?? image.digest} from ${repository} in ${this.label}`;
    let out: BatchDeleteImageCommandOutput;
    try {
      out = await this.ecr.send(
        new BatchDeleteImageCommand({ repositoryName: repository, imageIds: [imageId] }),
      );
    } catch (err) {
      if ((err as { name?: string }).name === 'RepositoryNotFoundException') return;
      throw awsError(what, err);
    }
    const failure = out.failures?.find((f) => f.failureCode !== 'ImageNotFound');
    if (failure) {
      throw new MirrorError(
        'AWS_ERROR',
        `${what}: ${failure.failureCode}: ${failure.failureReason ?? ''}`.trim(),
      );
    }
  }
}
