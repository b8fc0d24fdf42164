/** ECR private registry hosts: `<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]`. */
const ECR_HOST = /^(\d{12})\.dkr\.ecr(-fips)?\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/;

export interface EcrRegistry {
  accountId: string;
  region: string;
  fips: boolean;
}

export function parseEcrHost(host: string): EcrRegistry | undefined {
  const m = ECR_HOST.exec(host.toLowerCase());
  if (!m) return undefined;
  return { accountId: m[1]!, region: m[3]!, fips: m[2] !== undefined };
}

export function ecrHost(accountId: string, region: string): string {
  const suffix = region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
  return `${accountId}.dkr.ecr.${region}.${suffix}`;
}

/** The AWS partition of a region: where its ARNs and credentials belong. */
export function partitionOf(region: string): string {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  if (region.startsWith('us-isob-')) return 'aws-iso-b';
  if (region.startsWith('us-iso-')) return 'aws-iso';
  return 'aws';
}
