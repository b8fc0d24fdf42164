import { formatLocation, mapRepository, parseLocation, underPrefix } from '../../src/sync/location';

test('REGISTRY[/PREFIX]', () => {
  expect(parseLocation('localhost:5000', 'SRC')).toEqual({ registry: 'localhost:5000', prefix: '' });
  expect(parseLocation('ghcr.io/org/team/', 'SRC')).toEqual({ registry: 'ghcr.io', prefix: 'org/team' });
  expect(parseLocation('111111111111.dkr.ecr.us-east-1.amazonaws.com/team', 'SRC')).toEqual({
    registry: '111111111111.dkr.ecr.us-east-1.amazonaws.com',
    prefix: 'team',
  });
  expect(formatLocation({ registry: 'r.io', prefix: 'a/b' })).toBe('r.io/a/b');
});

test.each([
  ['https://r.io/team', /leave out the scheme/],
  ['r.io/team:v1', /not a tag or a digest/],
  ['r.io/team@sha256:abc', /not a tag or a digest/],
  ['team/api', /"team" is not a registry host/],
  ['r.io/Team', /not a repository prefix/],
])('%s is refused', (text, message) => {
  expect(() => parseLocation(text, 'SRC')).toThrow(message);
  expect(() => parseLocation(text, 'SRC')).toThrow(/^SRC /);
});

test('the prefix selects itself and what is below it, whole components only', () => {
  expect(underPrefix('team', 'team')).toBe(true);
  expect(underPrefix('team/api', 'team')).toBe(true);
  expect(underPrefix('teams/api', 'team')).toBe(false);
  expect(underPrefix('anything', '')).toBe(true);
});

test('the source prefix is replaced by the destination prefix', () => {
  const src = { registry: 'a.io', prefix: 'team' };
  expect(mapRepository('team/api', src, { registry: 'b.io', prefix: 'mirror/team' })).toBe('mirror/team/api');
  expect(mapRepository('team', src, { registry: 'b.io', prefix: 'mirror' })).toBe('mirror');
  expect(mapRepository('team/a/b', src, { registry: 'b.io', prefix: '' })).toBe('a/b');
  expect(mapRepository('team', src, { registry: 'b.io', prefix: '' })).toBe('team');
  const all = { registry: 'a.io', prefix: '' };
  expect(mapRepository('x/y', all, { registry: 'b.io', prefix: '' })).toBe('x/y');
  expect(mapRepository('x/y', all, { registry: 'b.io', prefix: 'copies' })).toBe('copies/x/y');
});
