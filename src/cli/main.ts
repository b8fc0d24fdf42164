import { setFlagsFromString } from 'node:v8';
import { Command, CommanderError, Option } from 'commander';
import { describeError, MirrorError } from '../errors';
import { closeConnections } from '../registry/transport';
import { wasInterrupted } from './cancel';
import { runCopy } from './copy';
import { DEFAULT_RESYNC_FUNCTION, DEFAULT_TABLE } from './defaults';
import { forTerminal } from './terminal';

// The SDK's notice that its 2027 releases need Node.js 22 would break the one-line error contract
// of this command on Node.js 20, which we still support; the README says which versions we test.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// A command lives for seconds: V8's optimising compiler (TurboFan) costs more CPU than it saves,
// as the hot paths are native (hashing, sockets). `npm run bench`, 128 MiB image: 0.15 CPU-s and
// 0.12 s of wall time less; on a 512 MiB layer no difference. Set before any of our code runs hot.
setFlagsFromString('--no-opt');

const program = new Command()
  .name('ecr-mirror')
  .description('Mirror container images between registries, byte for byte, with their signatures and SBOMs.')
  .version('0.1.0')
  .showHelpAfterError('(add --help for usage)')
  // Set before subcommands are added, so they inherit it: we choose the exit codes.
  .exitOverride();

program
  .command('copy')
  .description('copy one image, index or artifact (and its referrers) from SRC to DST')
  .argument('<SRC>', 'source reference: host[:port]/repository[:tag][@sha256:…]')
  .argument('<DST>', 'destination reference; without a tag it takes the source tag')
  .addOption(new Option('--src-creds <USER:PASS>', 'source credentials').env('ECR_MIRROR_SRC_CREDS'))
  .addOption(new Option('--dest-creds <USER:PASS>', 'destination credentials').env('ECR_MIRROR_DEST_CREDS'))
  .option('--insecure', 'use plain HTTP for registries that are not ECR (local registries)')
  .option('--no-referrers', 'leave signatures, SBOMs and attestations behind')
  .option('--concurrency <N>', 'blobs in flight at once (default 6)')
  .option('--timeout <DURATION>', 'give up after this long (90s, 30m, 2h): exit 1 with TIMEOUT')
  .addOption(
    new Option('--registry-endpoints <JSON>', 'map registry hosts to base URLs')
      .env('REGISTRY_ENDPOINTS')
      .hideHelp(),
  )
  .option('--json', 'print the summary as JSON')
  .addHelpText(
    'after',
    `
Examples:
  ecr-mirror copy 111111111111.dkr.ecr.us-east-1.amazonaws.com/app:1.4 222222222222.dkr.ecr.eu-west-1.amazonaws.com/app
  ecr-mirror copy --insecure --src-creds u:p --dest-creds u:p localhost:5001/team/api:v2 localhost:5002/team/api:v2

ECR hosts need no credential flags: they use GetAuthorizationToken with the default AWS credential chain.`,
  )
  .action(runCopy);

program
  .command('sync')
  .description(
    'copy a fleet: every repository under SRC (and every tag) that DST lacks or holds at another digest',
  )
  .argument('<SRC_REGISTRY[/PREFIX]>', 'source registry, optionally a repository prefix: localhost:5001/team')
  .argument('<DST_REGISTRY[/PREFIX]>', 'destination registry; the source prefix is replaced by this one')
  .option('--repositories <GLOB,...>', 'only source repositories matching these globs (full names: team/*)')
  .option('--exclude-repositories <GLOB,...>', 'leave out source repositories matching these globs')
  .option('--tags <GLOB,...>', 'only tags matching these globs (v*)')
  .option('--exclude-tags <GLOB,...>', 'leave out tags matching these globs (*-dev)')
  .option('--dry-run', 'list what would be copied; copy nothing')
  .option('--concurrency <N>', 'blobs in flight at once, all images together (default 8)')
  .option('--images <N>', 'images copied at once (default 4)')
  .addOption(new Option('--src-creds <U:P>', 'source credentials').env('ECR_MIRROR_SRC_CREDS'))
  .addOption(new Option('--dest-creds <U:P>', 'destination credentials').env('ECR_MIRROR_DEST_CREDS'))
  .option('--insecure', 'use plain HTTP for registries that are not ECR (local registries)')
  .option('--no-referrers', 'leave signatures, SBOMs and attestations (and their tags) behind')
  .addOption(
    new Option('--registry-endpoints <JSON>', 'map registry hosts to base URLs')
      .env('REGISTRY_ENDPOINTS')
      .hideHelp(),
  )
  .option('--json', 'print the summary as JSON')
  .addHelpText(
    'after',
    `
Exit codes: 0 when every image is in sync, 1 when any failed (each listed), 2 on a usage error, 130 after Ctrl-C.

Examples:
  ecr-mirror sync 111111111111.dkr.ecr.us-east-1.amazonaws.com/team 222222222222.dkr.ecr.eu-west-1.amazonaws.com/mirror/team
  ecr-mirror sync --insecure --src-creds u:p --dest-creds u:p --tags 'v*' localhost:5001 localhost:5002
  ecr-mirror sync --dry-run --src-creds u:p registry.example.com/org 123456789012.dkr.ecr.eu-west-1.amazonaws.com/org

ECR hosts need no credential flags: listings use DescribeRepositories and ListImages, logins
GetAuthorizationToken, with the default AWS credential chain. Other sources must serve /v2/_catalog
(GHCR and Docker Hub do not).`,
  )
  // Loaded with the command: the other commands start without it.
  .action(async (src, dst, opts) => (await import('./sync')).runSyncCommand(src, dst, opts));

program
  .command('status')
  .description('show where images stand: the mirror status table, newest first')
  .argument('[REPO[:TAG]]', 'one source repository, optionally one tag (or REPO@sha256:…)')
  .option('--failed', 'only failures and conflicts')
  .option('--status <STATUS>', 'only this status: succeeded, skipped, failed, conflict, deleted, in_progress')
  .option(
    '--since <DURATION>',
    'only results updated within this time: 30m, 24h, 7d (default 24h without REPO)',
  )
  .option('--destination <ID>', 'only this destination')
  .option('--limit <N>', 'at most N records (default 100)')
  .option('--json', 'print the records as JSON')
  .addOption(new Option('--table <NAME>', 'status table').env('STATUS_TABLE').default(DEFAULT_TABLE))
  .addOption(new Option('--region <REGION>', "the table's region").env('AWS_REGION'))
  // The AWS SDK loads with the command that needs it: `copy` starts faster without it.
  .action(async (target, opts) => (await import('./status')).runStatus(target, opts));

program
  .command('resync')
  .description(
    'reconcile: compare every source tag with the destinations and mirror what is missing or different',
  )
  .option('--repositories <PATTERNS>', 'comma-separated repository globs, such as team/*')
  .option('--tags <PATTERNS>', 'comma-separated tag globs, such as v*')
  .option('--destinations <IDS>', 'comma-separated destination ids (default: all)')
  .option('--dry-run', 'show the differences and change nothing')
  .option('--json', 'print the summary and differences as JSON')
  .addOption(
    new Option('--function <NAME>', 'the deployed resync Lambda')
      .env('ECR_MIRROR_RESYNC_FUNCTION')
      .default(DEFAULT_RESYNC_FUNCTION),
  )
  .addOption(new Option('--region <REGION>', "the function's region").env('AWS_REGION'))
  .action(async (opts) => (await import('./resync')).runResyncCommand(opts));

program
  .command('doctor')
  .description(
    "check a mirror's whole setup from where you stand: each problem with its principal, action, resource and fix",
  )
  .option(
    '--function <NAME>',
    'read the configuration from the deployed mirror function (lambda:GetFunctionConfiguration)',
  )
  .option('--repository <REPO[:TAG]>', 'the source repository (and tag) to check, instead of a sample')
  .option('--json', 'print the checks as JSON: [{ "id", "status", "detail", "fix" }]')
  .addHelpText(
    'after',
    `
Without --function it reads the environment the Lambdas read (SOURCE_ACCOUNT_ID, DESTINATIONS, STATUS_TABLE, ...).
Exit codes: 0 when no check failed, 1 when one did, 2 on a usage error.

Examples:
  ecr-mirror doctor --function ecr-mirror-prod-mirror
  SOURCE_ACCOUNT_ID=111111111111 SOURCE_REGION=us-east-1 ecr-mirror doctor --repository team/api:1.4`,
  )
  .action(async (opts) => (await import('./doctor')).runDoctorCommand(opts));

program
  .command('grant')
  .description("let other accounts pull from this account's repositories: merges into each repository policy")
  .argument('<REPO...>', 'repository names or globs (app/*)')
  .option('--account <ID>', 'an account whose principals may pull (repeat for more)', collectValues)
  .option('--org <o-xxxx>', 'every account of this AWS Organization may pull (aws:PrincipalOrgID)')
  .option('--push', 'may push too')
  .addOption(new Option('--region <REGION>', "the repositories' region").env('AWS_REGION'))
  .option('--dry-run', 'show each policy before and after as a diff; change nothing')
  .option('--revoke', 'remove the statements grant added for these principals (with --push: only push)')
  .option('--json', 'print the result as JSON')
  .addHelpText(
    'after',
    `
Each repository gets one statement with a stable Sid (EcrMirrorPull + a hash of the principals); every
other statement of its policy is kept. A second run changes nothing.

Examples:
  ecr-mirror grant 'team/*' --account 222222222222 --region us-east-1 --dry-run
  ecr-mirror grant team/api --org o-a1b2c3d4e5
  ecr-mirror grant team/api --account 222222222222 --revoke`,
  )
  .action(async (repositories, opts) => (await import('./grant')).runGrantCommand(repositories, opts));

/** `--account 1 --account 2`, or `--account 1,2`. */
function collectValues(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((v) => v.trim())].filter((v) => v.length > 0);
}

async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version end here too, with exit code 0.
      process.exitCode = err.exitCode === 0 ? 0 : 2;
    } else {
      // One line, whatever the registry or AWS put in the message.
      process.stderr.write(`ecr-mirror: ${forTerminal(describeError(err))}\n`);
      if (wasInterrupted()) process.exitCode = 130;
      else process.exitCode = err instanceof MirrorError && err.code.startsWith('INVALID_') ? 2 : 1;
    }
  } finally {
    await closeConnections();
  }
}

void main();
