import { checkDestinations, type Destination } from './config';

/**
 * The package-time face of the configuration's one validator: infra/serverless-params.cjs calls this
 * (bundled as dist/config-check.js by `npm run build`) while `osls package` resolves the
 * `destinations` param, so a DESTINATIONS the Lambdas would refuse at load fails packaging instead,
 * naming the field. The source account and region are checked too when they are plain values; the
 * defaults are CloudFormation references, known only at deploy, and then the Lambdas check at load.
 */
export function checkDestinationsParam(
  raw: unknown,
  source: { accountId?: unknown; region?: unknown } = {},
): Destination[] {
  return checkDestinations(raw, {
    setting: 'param "destinations"',
    ...(typeof source.accountId === 'string' && { sourceAccountId: source.accountId }),
    ...(typeof source.region === 'string' && { sourceRegion: source.region }),
  });
}
