import type { Destination, MirrorConfig, RepositorySettings } from '../config/config';
import type { BlobLedger } from '../copy/blob-ledger';
import type { RegistryClient } from '../registry/registry';
import type { MirrorRecord } from '../status/schema';
import type { StatusStore } from '../status/store';

/**
 * What the mirror talks to, as ports: no AWS SDK type crosses them. The deployed adapters are built
 * in src/wiring/aws.ts, the local run's in src/wiring/local.ts; tests may put anything behind them.
 */

/** Where outcomes are announced (EventBridge when deployed). Returns how many were not accepted. */
export interface ResultPublisher {
  publish(records: readonly MirrorRecord[]): Promise<number>;
}

/** A message that retrying cannot help, with why. */
export interface DeadLetter {
  body: string;
  code: string;
  reason: string;
  eventId?: string;
}

/** Where such a message goes, with its reason (the dead-letter queue when deployed). */
export interface DeadLetterSink {
  send(letter: DeadLetter): Promise<void>;
}

/** Sets when a message is received again (SQS ChangeMessageVisibility when deployed). */
export interface RedeliverySchedule {
  retryIn(receiptHandle: string, seconds: number): Promise<void>;
}

/** One destination's repositories: made sure of before a copy, images deleted for deletion sync. */
export interface RepositoryManager {
  /** Creates the repository when missing and `create` is set; remembers what exists. */
  ensure(repository: string, settings: RepositorySettings, create: boolean): Promise<'exists' | 'created'>;
  /** Forgets that a repository exists (it was deleted behind our back: a push met a 404). */
  forget(repository: string): void;
  /** Deletes a tag, or an image by digest; an image already gone counts as deleted. */
  deleteImage(repository: string, image: { tag?: string; digest?: string }): Promise<void>;
}

export interface DestinationClients {
  /** `222222222222/eu-west-1`, for messages. */
  label: string;
  host: string;
  registry: RegistryClient;
  repositories: RepositoryManager;
  /** Resolves the destination's credentials (the assumed role): a refused AssumeRole fails clearly and early. */
  connect(): Promise<void>;
}

/** Everything a mirror job talks to, built once per Lambda container from the validated configuration. */
export interface MirrorRuntime {
  config: MirrorConfig;
  store: StatusStore;
  notifier: ResultPublisher | undefined;
  deadLetters: DeadLetterSink | undefined;
  /** Without it a retried message waits for the queue's visibility timeout. */
  redelivery: RedeliverySchedule | undefined;
  sourceHost: string;
  source: RegistryClient;
  destination(d: Destination): DestinationClients;
  /**
   * Blobs at the destinations, shared by every copy of this runtime (the records of a batch, and the
   * batches a warm container handles later): each moves once per destination repository, and is
   * mounted from another repository of the same registry where it can be. Without it each copy
   * keeps its own.
   */
  blobs?: BlobLedger;
}
