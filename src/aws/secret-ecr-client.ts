import { ECRClient } from '@aws-sdk/client-ecr';
import { MirrorError } from '../errors';
import type { DestinationSecret } from './destination-secret';
import type { EcrSender } from './ecr-auth';

/** SDK errors that say the access key itself was refused (rotated, deleted, deactivated). */
const KEY_REFUSED =
  /UnrecognizedClient|InvalidClientTokenId|InvalidSignature|SignatureDoesNotMatch|ExpiredToken|InvalidAccessKeyId/;

/**
 * An ECR API client for an ECR registry reached with access keys from a secret (another partition,
 * where no role can be assumed): it signs with the secret's current keys, building a client for
 * them, and when AWS refuses a key it reads the secret again once and retries with the new one.
 * The region decides the partition's endpoint.
 */
export function secretEcrClient(secret: DestinationSecret, region: string): EcrSender & { destroy(): void } {
  let current: { accessKeyId: string; client: ECRClient } | undefined;

  const clientFor = async (): Promise<ECRClient> => {
    const value = await secret.get();
    if (value.kind !== 'access-keys') {
      throw new MirrorError(
        'INVALID_CONFIG',
        `secret ${secret.secretArn} holds a username and password; an ECR registry needs {"accessKeyId","secretAccessKey"}`,
      );
    }
    if (current?.accessKeyId !== value.accessKeyId) {
      current?.client.destroy();
      const { accessKeyId, secretAccessKey, sessionToken } = value;
      current = {
        accessKeyId,
        client: new ECRClient({
          region,
          credentials: { accessKeyId, secretAccessKey, ...(sessionToken && { sessionToken }) },
        }),
      };
    }
    return current.client;
  };

  const send = (async (command: Parameters<ECRClient['send']>[0]) => {
    try {
      return await (await clientFor()).send(command);
    } catch (err) {
      if (!KEY_REFUSED.test((err as { name?: string }).name ?? '') || !(await secret.refresh())) throw err;
      return (await clientFor()).send(command);
    }
  }) as EcrSender['send'];

  return { send, destroy: () => current?.client.destroy() };
}
