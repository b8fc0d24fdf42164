import { DescribeRepositoriesCommand, type ECRClient, ListImagesCommand } from '@aws-sdk/client-ecr';
import type { ImagePage, RepositoryPage } from './ecr-inventory';
import { awsError } from './errors';

/**
 * An ECR registry's repositories (DescribeRepositories) and tagged images (ListImages), page by
 * page, for `ecr-mirror sync`: ECR serves no `/v2/_catalog`. The registry id names whose registry
 * is listed, which need not be the caller's (a repository policy may let it read another account's).
 */
export class EcrListing {
  constructor(
    private readonly ecr: ECRClient,
    private readonly registryId: string,
  ) {}

  async repositories(nextToken?: string): Promise<RepositoryPage> {
    try {
      const out = await this.ecr.send(
        new DescribeRepositoriesCommand({
          registryId: this.registryId,
          maxResults: 1000,
          ...(nextToken && { nextToken }),
        }),
      );
      return {
        repositories: (out.repositories ?? []).map((r) => r.repositoryName!).filter(Boolean),
        ...(out.nextToken && { nextToken: out.nextToken }),
      };
    } catch (err) {
      throw awsError(`list the repositories of registry ${this.registryId}`, err);
    }
  }

  async images(repository: string, nextToken?: string): Promise<ImagePage> {
    try {
      const out = await this.ecr.send(
        new ListImagesCommand({
          registryId: this.registryId,
          repositoryName: repository,
          filter: { tagStatus: 'TAGGED' },
          maxResults: 1000,
          ...(nextToken && { nextToken }),
        }),
      );
      const byDigest = new Map<string, string[]>();
      for (const id of out.imageIds ?? []) {
        if (!id.imageDigest || !id.imageTag) continue;
        byDigest.set(id.imageDigest, [...(byDigest.get(id.imageDigest) ?? []), id.imageTag]);
      }
      return {
        images: [...byDigest].map(([digest, tags]) => ({ digest, tags })),
        ...(out.nextToken && { nextToken: out.nextToken }),
      };
    } catch (err) {
      throw awsError(`list the images of ${repository} in registry ${this.registryId}`, err);
    }
  }
}
