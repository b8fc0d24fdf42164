// The part of the ECR SDK that registry logins need, behind a module of ours: the CLI loads it on
// first use, and esbuild gives a dynamically imported CommonJS package only a `default` export in an
// ESM bundle, while a module of ours keeps its named exports in every format.
export { ECRClient, GetAuthorizationTokenCommand } from '@aws-sdk/client-ecr';
