import { MirrorError } from '../errors';
import type { RegistryClient } from '../registry/registry';
import type { RepositoryManager } from './ports';

/**
 * Repositories of a registry that is not ECR, over the registry API alone: nothing to create
 * beforehand (a registry makes a repository on the first push, or refuses it, as it chooses), and
 * deletion sync through `DELETE /v2/<name>/manifests/<reference>`.
 */
export class RegistryRepositories implements RepositoryManager {
  constructor(
    private readonly registry: RegistryClient,
    /** Names the destination in messages: its host. */
    private readonly label: string,
  ) {}

  async ensure(): Promise<'exists'> {
    return 'exists';
  }

  forget(): void {}

  /**
   * A tag is deleted as a tag (OCI distribution 1.1); a registry that cannot is not asked to delete
   * the manifest instead, which would take every other tag on it along. An image already gone counts
   * as deleted.
   */
  async deleteImage(repository: string, image: { tag?: string; digest?: string }): Promise<void> {
    const reference = image.tag ?? image.digest!;
    if (image.tag !== undefined && !(await this.registry.headManifest(repository, image.tag))) return;
    try {
      await this.registry.deleteManifest(repository, reference);
    } catch (err) {
      if (err instanceof MirrorError && err.code === 'NOT_FOUND') return;
      // A refusal of the login (DENIED, or UNAUTHORIZED: a token without the delete action) is not
      // the registry being unable to delete a tag alone: it keeps its own code and message.
      const refused = err instanceof MirrorError && (err.code === 'DENIED' || err.code === 'UNAUTHORIZED');
      if (image.tag !== undefined && err instanceof MirrorError && !err.retryable && !refused) {
        throw new MirrorError(
          'REGISTRY_ERROR',
          `${this.label} did not delete the tag ${repository}:${image.tag} (${err.message}); deleting its manifest would also remove every other tag on it, so it was left in place`,
          { retryable: false, cause: err },
        );
      }
      throw err;
    }
  }
}
