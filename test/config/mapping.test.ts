import { mapRepository } from '../../src/config/mapping';

test.each([
  ['team/api', {}, 'team/api'],
  ['team/api', { addPrefix: 'mirror/' }, 'mirror/team/api'],
  ['team-a/api', { stripPrefix: 'team-a/' }, 'api'],
  ['team-a/api', { stripPrefix: 'team-a/', addPrefix: 'b/' }, 'b/api'],
  ['other/api', { stripPrefix: 'team-a/' }, 'other/api'],
  ['team/svc/api', { template: 'copies/{name}' }, 'copies/api'],
  ['team/api', { template: 'from-{sourceAccount}/{repository}' }, 'from-111111111111/team/api'],
])('%s with %j is %s', (source, mapping, expected) => {
  expect(mapRepository(source, mapping, '111111111111')).toBe(expected);
});

test('a mapping that makes an invalid name says which', () => {
  expect(() => mapRepository('team/api', { addPrefix: 'Mirror/' }, '1')).toThrow(
    /repository mapping turns "team\/api" into an invalid name "Mirror\/team\/api"/,
  );
});
