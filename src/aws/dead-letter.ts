import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { DeadLetter, DeadLetterSink } from '../mirror/ports';
import { awsError } from './errors';

/**
 * Sends a message that retrying cannot help straight to the dead-letter queue, with the reason as
 * message attributes (SQS's own redrive would keep the body but lose why it failed).
 */
export class DeadLetterQueue implements DeadLetterSink {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
  ) {}

  async send(letter: DeadLetter): Promise<void> {
    const attribute = (value: string) => ({ DataType: 'String', StringValue: value.slice(0, 1024) || '-' });
    try {
      await this.sqs.send(
        new SendMessageCommand({
          QueueUrl: this.queueUrl,
          MessageBody: letter.body,
          MessageAttributes: {
            errorCode: attribute(letter.code),
            reason: attribute(letter.reason),
            ...(letter.eventId && { eventId: attribute(letter.eventId) }),
          },
        }),
      );
    } catch (err) {
      throw awsError('send to the dead-letter queue', err);
    }
  }
}
