import { DescribeImagesCommand, DescribeRepositoriesCommand, type ECRClient } from '@aws-sdk/client-ecr';
import { awsError } from './errors';

export interface RepositoryPage {
  repositories: string[];
  nextToken?: string;
}

export interface ImagePage {
  images: { digest: string; tags: string[] }[];
  nextToken?: string;
}

/** Pages of the source registry's repositories and tagged images, one API call each, paced by the caller. */
export class EcrInventory {
  constructor(
    private readonly ecr: ECRClient,
    private readonly pace: () => Promise<void>,
  ) {}

  async repositories(nextToken?: string): Promise<RepositoryPage> {
    await this.pace();
    try {
      const out = await this.ecr.send(
        new DescribeRepositoriesCommand({ maxResults: 1000, ...(nextToken && { nextToken }) }),
      );
      return {
        repositories: (out.repositories ?? []).map((r) => r.repositoryName!).filter(Boolean),
        ...(out.nextToken && { nextToken: out.nextToken }),
      };
    } catch (err) {
      throw awsError('list source repositories', err);
    }
  }

  async images(repository: string, nextToken?: string): Promise<ImagePage> {
    await this.pace();
    try {
      const out = await this.ecr.send(
        new DescribeImagesCommand({
          repositoryName: repository,
          filter: { tagStatus: 'TAGGED' },
          maxResults: 1000,
          ...(nextToken && { nextToken }),
        }),
      );
      return {
        images: (out.imageDetails ?? [])
          .filter((d) => d.imageDigest)
          .map((d) => ({ digest: d.imageDigest!, tags: d.imageTags ?? [] })),
        ...(out.nextToken && { nextToken: out.nextToken }),
      };
    } catch (err) {
      throw awsError(`list images of ${repository}`, err);
    }
  }
}
