import { ChangeMessageVisibilityCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { RedeliverySchedule } from '../mirror/ports';
import { awsError } from './errors';

/**
 * Puts a message back on the queue after a delay of our choosing (ChangeMessageVisibility), instead
 * of the queue's visibility timeout: 90 minutes is right for a copy that may still be running, far
 * too long for a retry after a throttled request.
 */
export class QueueRedelivery implements RedeliverySchedule {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
  ) {}

  async retryIn(receiptHandle: string, seconds: number): Promise<void> {
    try {
      await this.sqs.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: this.queueUrl,
          ReceiptHandle: receiptHandle,
          VisibilityTimeout: Math.max(0, Math.min(43_200, Math.round(seconds))),
        }),
      );
    } catch (err) {
      throw awsError('set when the message is received again', err);
    }
  }
}
