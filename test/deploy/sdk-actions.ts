/** How AWS SDK commands become IAM actions, for the tests that compare code and roles. */

/** The SDK packages the code may use, and how their commands become IAM actions. */
export const SERVICES: Record<string, (command: string) => string> = {
  '@aws-sdk/client-dynamodb': (c) => `dynamodb:${c}`,
  '@aws-sdk/client-ecr': (c) => `ecr:${c}`,
  '@aws-sdk/client-eventbridge': (c) => `events:${c}`,
  '@aws-sdk/client-lambda': (c) => `lambda:${c === 'Invoke' ? 'InvokeFunction' : c}`,
  // IAM authorizes the batch forms as the single ones.
  '@aws-sdk/client-sqs': (c) => `sqs:${c.replace(/Batch$/, '')}`,
  '@aws-sdk/client-secrets-manager': (c) => `secretsmanager:${c}`,
  '@aws-sdk/client-sts': (c) => `sts:${c}`,
  // The document client's commands send the table API's.
  '@aws-sdk/lib-dynamodb': (c) => {
    const operation: Record<string, string> = {
      Get: 'GetItem',
      Put: 'PutItem',
      Update: 'UpdateItem',
      Delete: 'DeleteItem',
      Query: 'Query',
      Scan: 'Scan',
      BatchGet: 'BatchGetItem',
      BatchWrite: 'BatchWriteItem',
      TransactGet: 'TransactGetItems',
      TransactWrite: 'TransactWriteItems',
    };
    if (!operation[c]) throw new Error(`lib-dynamodb ${c}Command: add its table API action here`);
    return `dynamodb:${operation[c]}`;
  },
};

/** The IAM action of an SDK command object, by the package its class comes from. */
export function actionOf(command: object): string {
  const name = command.constructor.name.replace(/Command$/, '');
  for (const pkg of Object.keys(SERVICES)) {
    const exported = (require(pkg) as Record<string, unknown>)[`${name}Command`];
    if (exported === command.constructor) return SERVICES[pkg]!(name);
  }
  throw new Error(`${command.constructor.name}: from no SDK package in SERVICES`);
}
