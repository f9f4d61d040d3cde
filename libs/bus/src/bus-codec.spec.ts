import { decodeBusFrame, encodeCanary, encodeMessage, messagePrefix } from './bus-codec';

const envelope = { id: 'm1', instance: 'default', subscribers: ['PHID-a'], frame: '{"subscribers":["PHID-a"]}', acceptedAt: 5 };

describe('bus codec', () => {
  it('round-trips messages and canaries', () => {
    expect(decodeBusFrame(encodeMessage('n1', envelope))).toEqual({ ok: true, frame: { t: 'msg', o: 'n1', e: envelope } });
    expect(decodeBusFrame(encodeCanary('n1', 'x'))).toEqual({ ok: true, frame: { t: 'canary', o: 'n1', n: 'x' } });
  });

  it('starts every message of an origin with its prefix, and no other origin\'s or canary', () => {
    for (const origin of ['n1', 'a"b\\c', 'ünï']) {
      const text = encodeMessage(origin, envelope);
      expect(text.startsWith(messagePrefix(origin))).toBe(true);
      expect(decodeBusFrame(text)).toMatchObject({ ok: true, frame: { o: origin } });
    }
    expect(encodeMessage('n12', envelope).startsWith(messagePrefix('n1'))).toBe(false);
    expect(encodeCanary('n1', 'x').startsWith(messagePrefix('n1'))).toBe(false);
  });

  it('carries touched when the envelope has it, and accepts envelopes without it (older nodes)', () => {
    const touched = { ...envelope, touched: ['fp1', 'fp2'] };
    expect(decodeBusFrame(encodeMessage('n1', touched))).toEqual({ ok: true, frame: { t: 'msg', o: 'n1', e: touched } });
    expect(decodeBusFrame(encodeMessage('n1', envelope))).toMatchObject({ ok: true });
    expect(decodeBusFrame('{"t":"msg","o":"n","e":{"id":"x","instance":"i","subscribers":[],"frame":"{}","acceptedAt":1,"touched":[1]}}')).toMatchObject({ ok: false });
  });

  it('sends only the envelope fields', () => {
    const text = encodeMessage('n1', { ...envelope, extra: 'no' } as typeof envelope);
    expect(text).not.toContain('extra');
  });

  it.each([
    ['not JSON', '{'],
    ['not an object', '[1]'],
    ['no origin', '{"t":"msg","e":{}}'],
    ['malformed envelope', '{"t":"msg","o":"n","e":{"id":"x"}}'],
    ['malformed envelope', '{"t":"msg","o":"n","e":{"id":"x","instance":"i","subscribers":[1],"frame":"f","acceptedAt":1}}'],
    ['malformed canary', '{"t":"canary","o":"n"}'],
    ['unknown type "zzz"', '{"t":"zzz","o":"n"}'],
  ])('refuses %s without throwing', (reason, text) => {
    expect(decodeBusFrame(text)).toEqual({ ok: false, reason });
  });
});
