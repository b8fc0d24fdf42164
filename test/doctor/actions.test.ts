import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { PUSH_ACTIONS } from '../../src/doctor/destination-checks';
import { PULL_ACTIONS } from '../../src/doctor/source-checks';
import { destinationActionsWhen } from '../../src/permissions';
import {
  asList,
  cloudFormationTags,
  type JsonObject,
  roleStatements,
  type Statement,
  type Template,
  withConditions,
} from '../deploy/cloudformation';

/**
 * The statements doctor tells people to add name what the deployment's templates grant, because
 * doctor derives them from src/permissions.ts (which the deploy tests hold to the templates).
 */

const root = resolve(__dirname, '../..');
const actionsOf = (statements: Statement[]) =>
  [...new Set(statements.flatMap((s) => asList(s.Action)))].sort();

test('a refused source read gets the actions the function roles hold on source repositories', async () => {
  const yaml = parse(await readFile(join(root, 'serverless.yml'), 'utf8'), {
    customTags: cloudFormationTags,
  }) as { resources: { Resources: Template['Resources'] } };
  const onSourceRepositories = Object.values(yaml.resources.Resources)
    .filter((r) => r.Type === 'AWS::IAM::Role')
    .flatMap(roleStatements)
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a serverless.yml variable, as written there
    .filter((s) => s.Resource === '${file(./infra/serverless-params.cjs):sourceRepositoryArns}');
  expect(onSourceRepositories.length).toBeGreaterThan(0);
  // Never BatchCheckLayerAvailability: no function calls it on the source, nor is it granted there.
  expect([...PULL_ACTIONS]).toEqual(actionsOf(onSourceRepositories));
});

test('a refused push, repository creation or KMS key gets what the destination role grants for it', async () => {
  const template = parse(await readFile(join(root, 'infra/destination-role.yml'), 'utf8'), {
    customTags: cloudFormationTags,
  }) as Template;
  const role = Object.values(template.Resources).find((r) => r.Type === 'AWS::IAM::Role')!;
  const when = (conditions: Record<string, boolean>) =>
    roleStatements({
      Type: role.Type,
      Properties: withConditions(role.Properties!, conditions) as JsonObject,
    });
  const off = { CreateRepositories: false, Deletes: false, HasKmsKey: false, HasOperators: false };
  const granted = actionsOf(when(off));
  for (const action of PUSH_ACTIONS) expect(granted).toContain(action);
  for (const option of ['CreateRepositories', 'HasKmsKey'] as const) {
    const added = actionsOf(when({ ...off, [option]: true })).filter((a) => !granted.includes(a));
    expect(destinationActionsWhen(option)).toEqual(added);
  }
});
