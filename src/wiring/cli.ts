import type { LambdaClient } from '@aws-sdk/client-lambda';
import type { StatusStore } from '../status/store';

/**
 * The CLI's AWS clients, built here as the Lambdas' are in mirror.ts and resync.ts. Each is loaded on
 * first use (the CLI requires the AWS SDK from node_modules only when a command needs it), so
 * `ecr-mirror status` never loads the Lambda client, nor `resync` the DynamoDB one.
 */

/** `ecr-mirror status`: the status table, read with the user's credentials. Close it when done. */
export async function cliStatusStore(
  table: string,
  region: { region?: string },
): Promise<{ store: StatusStore; close(): void }> {
  const [{ DynamoDBClient }, { DynamoDbStatusStore }] = await Promise.all([
    import('@aws-sdk/client-dynamodb'),
    import('../aws/dynamodb-status-store'),
  ]);
  const client = new DynamoDBClient(region);
  return { store: new DynamoDbStatusStore(table, 30, client), close: () => client.destroy() };
}

/** `ecr-mirror resync`: invokes the deployed resync function. */
export async function cliLambda(region: { region?: string }): Promise<LambdaClient> {
  const { LambdaClient } = await import('@aws-sdk/client-lambda');
  return new LambdaClient(region);
}
