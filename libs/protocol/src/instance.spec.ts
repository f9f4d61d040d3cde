import { instanceFromPath, instanceFromQuery } from './instance';

describe('instanceFromPath', () => {
  it.each([
    ['/~acme/', 'acme'],
    ['/~acme', 'acme'],
    ['/ws/~acme/', 'acme'],
    ['/deep/prefix/~acme/trailing/path', 'acmetrailingpath'],
    ['/~a~b', 'a'],
    ['/~a/b~c/d', 'ab'],
    ['/~/', 'default'],
    ['/~', 'default'],
    ['/~~acme', 'default'],
    ['/', 'default'],
    ['/ws/acme/', 'default'],
    ['', 'default'],
    ['/~ac%20me/', 'ac%20me'],
  ])('%s is %s', (path, instance) => {
    expect(instanceFromPath(path)).toBe(instance);
  });
});

describe('instanceFromQuery', () => {
  it('takes a non-empty string', () => {
    expect(instanceFromQuery('acme')).toBe('acme');
  });
  it('means default when absent or empty', () => {
    expect(instanceFromQuery(undefined)).toBe('default');
    expect(instanceFromQuery('')).toBe('default');
  });
  it('takes the first of repeated parameters', () => {
    expect(instanceFromQuery(['acme', 'other'])).toBe('acme');
    expect(instanceFromQuery([''])).toBe('default');
  });
  it('means default for values that are not strings', () => {
    expect(instanceFromQuery({ a: 'b' })).toBe('default');
    expect(instanceFromQuery(7)).toBe('default');
  });
});
