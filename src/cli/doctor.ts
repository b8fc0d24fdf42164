import {
  GetFunctionConfigurationCommand,
  type GetFunctionConfigurationCommandOutput,
  type LambdaClient,
} from '@aws-sdk/client-lambda';
import { loadConfig, loadSourceConfig, type MirrorConfig } from '../config/config';
import { validateRepository } from '../core/reference';
import { DoctorClients } from '../doctor/clients';
import { type ConfigSource, type DoctorOptions, runDoctor } from '../doctor/doctor';
import { denialIn, errorName, errorText, json, statement } from '../doctor/fixes';
import { renderResult, summaryLine } from '../doctor/render';
import { MirrorError } from '../errors';
import { parseTarget } from './status';

export interface DoctorCommandOptions {
  function?: string;
  repository?: string;
  json?: boolean;
}

const ENV_HINT =
  "doctor reads the mirror's settings from the environment, as the Lambdas do (SOURCE_ACCOUNT_ID, SOURCE_REGION, " +
  'DESTINATIONS, STATUS_TABLE, …), or from a deployed function with --function NAME';

/** The configuration in the environment: the whole mirror's, or only the source's where no mirror is set. */
export function configFromEnvironment(env: NodeJS.ProcessEnv): ConfigSource {
  try {
    if (env.DESTINATIONS?.trim() || env.STATUS_TABLE?.trim()) {
      const mirror = loadConfig(env);
      return { kind: 'given', source: mirror, mirror };
    }
    return { kind: 'given', source: loadSourceConfig(env) };
  } catch (err) {
    if (err instanceof MirrorError && err.code === 'INVALID_CONFIG' && /is required/.test(err.message)) {
      throw new MirrorError('INVALID_CONFIG', `${err.message}; ${ENV_HINT}`, { cause: err });
    }
    throw err;
  }
}

/**
 * The deployed mirror function's configuration (`lambda:GetFunctionConfiguration`), validated as the
 * function validates it. REGISTRY_ENDPOINTS comes from here, never from a deployment.
 */
export async function functionConfig(
  lambda: LambdaClient,
  name: string,
  env: NodeJS.ProcessEnv,
): Promise<{ mirror: MirrorConfig; mirrorRole?: string; deploymentRegion?: string }> {
  let out: GetFunctionConfigurationCommandOutput;
  try {
    out = await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: name }));
  } catch (err) {
    if (errorName(err) === 'ResourceNotFoundException') {
      throw new MirrorError(
        'NOT_FOUND',
        `no function ${name} in this region: the mirror function is ecr-mirror-<stage>-mirror, in the stack's region (AWS_REGION)`,
      );
    }
    if (denialIn(err)) {
      const fix = json(
        statement(['lambda:GetFunctionConfiguration'], [`arn:aws:lambda:*:*:function:${name}`]),
      );
      throw new MirrorError(
        'DENIED',
        `lambda:GetFunctionConfiguration on ${name} refused; allow it in your IAM policy: ${fix.replace(/\s+/g, ' ')}`,
      );
    }
    throw new MirrorError(
      'AWS_ERROR',
      `lambda:GetFunctionConfiguration on ${name}: ${errorName(err)}: ${errorText(err)}`,
    );
  }
  const variables = out.Environment?.Variables ?? {};
  const merged: NodeJS.ProcessEnv = { ...variables };
  if (env.REGISTRY_ENDPOINTS) merged.REGISTRY_ENDPOINTS = env.REGISTRY_ENDPOINTS;
  let mirror: MirrorConfig;
  try {
    mirror = loadConfig(merged);
  } catch (err) {
    // The function would fail on its first event the same way: a finding, not a usage error.
    throw new MirrorError(
      'AWS_ERROR',
      `the environment of ${name} is not a valid configuration: ${errorText(err)}`,
    );
  }
  const region = out.FunctionArn ? /^arn:[\w-]+:lambda:([a-z0-9-]+):/.exec(out.FunctionArn)?.[1] : undefined;
  return { mirror, ...(out.Role && { mirrorRole: out.Role }), ...(region && { deploymentRegion: region }) };
}

export function parseRepositoryOption(value: string): { repository: string; reference?: string } {
  const target = parseTarget(value);
  validateRepository(target.repository);
  return target;
}

export async function runDoctorCommand(
  opts: DoctorCommandOptions,
  env: NodeJS.ProcessEnv = process.env,
  extra: Partial<DoctorOptions> = {},
): Promise<void> {
  const target = opts.repository === undefined ? undefined : parseRepositoryOption(opts.repository);
  const clients = new DoctorClients();
  try {
    let config: ConfigSource;
    if (opts.function) {
      const name = opts.function;
      const region = /^arn:[\w-]+:lambda:([a-z0-9-]+):/.exec(name)?.[1];
      config = {
        kind: 'function',
        ...(region && { region }),
        load: () => functionConfig(clients.lambda(region), name, env),
      };
    } else {
      config = configFromEnvironment(env);
    }
    const colour = process.stdout.isTTY === true;
    const results = await runDoctor(
      config,
      { clients, ...(target && { target }), ...extra },
      opts.json ? undefined : (r) => process.stdout.write(renderResult(r, colour)),
    );
    process.stdout.write(opts.json ? `${JSON.stringify(results, null, 2)}\n` : summaryLine(results));
    process.exitCode = results.some((r) => r.status === 'fail') ? 1 : 0;
  } finally {
    clients.destroy();
  }
}
