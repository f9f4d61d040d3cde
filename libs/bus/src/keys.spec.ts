import { createRedisKeys } from './keys';

describe('redis keys', () => {
  it('start every name with the prefix, so clusters can share one Redis', () => {
    const a = createRedisKeys('one:');
    const b = createRedisKeys('two:');
    expect(a.busChannel).toBe('one:bus');
    expect(a.historyLog('default')).not.toBe(b.historyLog('default'));
    for (const name of [a.historyLog('x'), a.historyMeta('x'), a.historySeen('x', 'id')]) expect(name).toContain('one:');
  });

  it('keep every key of an instance in one cluster hash slot, and instances apart', () => {
    const keys = createRedisKeys('p:');
    const tag = (k: string) => k.slice(k.indexOf('{') + 1, k.indexOf('}'));
    for (const instance of ['default', 'a{b}c', 'x}', '{']) {
      const names = [keys.historyLog(instance), keys.historyMeta(instance), keys.historySeen(instance, 'id')];
      expect(new Set(names.map(tag)).size).toBe(1);
    }
    expect(tag(keys.historyLog('a'))).not.toBe(tag(keys.historyLog('b')));
    // Instances whose tags collide after brace replacement still get distinct keys.
    expect(keys.historyLog('a{')).not.toBe(keys.historyLog('a_'));
  });
});
