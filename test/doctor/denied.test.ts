import { denialOf, deniedRecordMessage, parseDenial } from '../../src/doctor/denied';

const ROLE = 'arn:aws:sts::222222222222:assumed-role/ecr-mirror-destination/fn';
const REPO = 'arn:aws:ecr:eu-west-1:222222222222:repository/mirror/app';

test('parseDenial reads AWS sentence: principal, action, resource and which policy is missing it', () => {
  expect(
    parseDenial(
      `denied: User: ${ROLE} is not authorized to perform: ecr:PutImage on resource: ${REPO} because no resource-based policy allows the ecr:PutImage action`,
    ),
  ).toEqual({ principal: ROLE, action: 'ecr:PutImage', resource: REPO, missingIn: 'resource' });
  expect(
    parseDenial(
      `User: ${ROLE} is not authorized to perform: ecr:PutImage on resource: ${REPO} with an explicit deny in a service control policy`,
    ),
  ).toMatchObject({ missingIn: 'explicit-deny' });
  expect(parseDenial('User is not authorized to perform: sts:AssumeRole')).toEqual({
    action: 'sts:AssumeRole',
  });
  expect(parseDenial('HTTP 500 INTERNAL')).toBeUndefined();
});

test('denialOf infers the action from the registry operation, and the side from the repository names', () => {
  const sides = {
    source: { accountId: '111111111111', region: 'us-east-1', repository: 'app' },
    destination: { accountId: '222222222222', region: 'eu-west-1', repository: 'mirror/app' },
  };
  expect(denialOf('PUT manifest mirror/app:v1: HTTP 403 DENIED', sides)).toEqual({
    action: 'ecr:PutImage',
    resource: REPO,
  });
  expect(denialOf('GET blob app@sha256:abc: HTTP 403 DENIED', sides)).toEqual({
    action: 'ecr:GetDownloadUrlForLayer',
    resource: 'arn:aws:ecr:us-east-1:111111111111:repository/app',
  });
  expect(denialOf('HEAD manifest mirror/app:v1: HTTP 403', sides)).toEqual({
    action: 'ecr:BatchGetImage',
    resource: REPO,
  });
  const same = { ...sides, destination: { ...sides.destination, repository: 'app' } };
  expect(denialOf('HEAD manifest app:v1: HTTP 403', same)!.resource).toBe(
    'arn:aws:ecr:us-east-1:111111111111:repository/app or arn:aws:ecr:eu-west-1:222222222222:repository/app',
  );
  expect(deniedRecordMessage('something refused', sides)).toBe(
    'access denied; run `ecr-mirror doctor` for the fix: something refused',
  );
});
