import {
  BatchDeleteImageCommand,
  type BatchDeleteImageCommandOutput,
  CreateRepositoryCommand,
  DescribeRepositoriesCommand,
  type ECRClient,
} from '@aws-sdk/client-ecr';
import type { RepositorySettings } from '../config/config';
import { MirrorError } from '../errors';
import { awsError } from './errors';

export interface RepositoryTarget {
  /** Names the destination in messages: `222222222222/eu-west-1`. */
  label: string;
  ecr: ECRClient;
  repository: string;
  settings: RepositorySettings;
  create: boolean;
}

/**
 * Destination repositories over the ECR API: made sure of before a copy (created when configured),
 * and images deleted when deletion sync is on. What exists is remembered for the life of the process.
 */
export class DestinationRepositories {
  private readonly known = new Set<string>();

  async ensure(target: RepositoryTarget): Promise<'exists' | 'created'> {
    const key = `${target.label}/${target.repository}`;
    if (this.known.has(key)) return 'exists';
    const what = `repository ${target.repository} in ${target.label}`;
    try {
      await target.ecr.send(new DescribeRepositoriesCommand({ repositoryNames: [target.repository] }));
      this.known.add(key);
      return 'exists';
    } catch (err) {
      if ((err as { name?: string }).name !== 'RepositoryNotFoundException')
        throw awsError(`describe ${what}`, err);
    }
    if (!target.create) {
      throw new MirrorError(
        'NOT_FOUND',
        `${what} does not exist; create it, or set CREATE_REPOSITORIES=true so the mirror creates it`,
      );
    }
    const s = target.settings;
    try {
      await target.ecr.send(
        new CreateRepositoryCommand({
          repositoryName: target.repository,
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
      this.known.add(key);
      return 'exists';
    }
    this.known.add(key);
    return 'created';
  }

  /** Deletes a tag, or an image by digest (with all its tags); an image already gone counts as deleted. */
  async deleteImage(
    target: Pick<RepositoryTarget, 'label' | 'ecr' | 'repository'>,
    image: { tag?: string; digest?: string },
  ): Promise<void> {
    const imageId = image.tag ? { imageTag: image.tag } : { imageDigest: image.digest };
    const what = `delete ${image.tag ?? image.digest} from ${target.repository} in ${target.label}`;
    let out: BatchDeleteImageCommandOutput;
    try {
      out = await target.ecr.send(
        new BatchDeleteImageCommand({ repositoryName: target.repository, imageIds: [imageId] }),
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
