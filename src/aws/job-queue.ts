import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { MirrorJob } from '../resync/plan';
import { jobEvent } from '../resync/wire';
import { createLimiter } from '../util/limit';
import { awsError } from './errors';

/**
 * Puts resync jobs on the mirror queue as `ECR Image Action` events, so they take exactly the path a
 * push takes (same handler, status records, retries and dead-letter queue).
 */
export class JobQueue {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
    private readonly account: string,
    private readonly region: string,
  ) {}

  /**
   * Sends in batches of ten (SQS's limit), a few batches at a time; returns how many were accepted.
   * Not paced: SQS takes far more than this, and the queue's consumers are what ECR's quotas see.
   */
  async send(jobs: readonly MirrorJob[]): Promise<number> {
    const batches: MirrorJob[][] = [];
    for (let i = 0; i < jobs.length; i += 10) batches.push(jobs.slice(i, i + 10));
    const limit = createLimiter(4);
    const sent = await Promise.all(batches.map((batch) => limit(() => this.sendBatch(batch))));
    return sent.reduce((a, b) => a + b, 0);
  }

  private async sendBatch(batch: MirrorJob[]): Promise<number> {
    try {
      const out = await this.sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: batch.map((job, n) => ({
            Id: String(n),
            MessageBody: jobEvent(job, this.account, this.region),
          })),
        }),
      );
      if (out.Failed && out.Failed.length > 0) {
        const f = out.Failed[0]!;
        throw new Error(
          `${out.Failed.length} of ${batch.length} messages refused: ${f.Code}: ${f.Message ?? ''}`,
        );
      }
      return batch.length;
    } catch (err) {
      throw awsError('enqueue resync jobs', err);
    }
  }
}
