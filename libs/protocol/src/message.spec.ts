import { checkPublishBody, parsePublishBody } from './message';
import { isValidInstance } from './instance';
import { createFingerprint, createMessageId } from './fingerprint';
import { envelopeOf } from './envelope';

describe('parsePublishBody', () => {
  it('accepts a Phorge-shaped message and passes every field through', () => {
    const text = '{"type":"notification","key":"42","subscribers":["PHID-USER-1"],"uniqueID":"u1","extra":{"a":[1]}}';
    const check = parsePublishBody(text);
    expect(check).toEqual({ ok: true, message: JSON.parse(text) });
  });

  it('accepts an empty subscriber list and a touched list of strings', () => {
    expect(parsePublishBody('{"subscribers":[]}').ok).toBe(true);
    expect(parsePublishBody('{"subscribers":["a"],"touched":["f1","f2"]}').ok).toBe(true);
  });

  it.each([
    ['not JSON', '{"subscribers":', 'invalid_json'],
    ['empty', '', 'invalid_json'],
    ['null', 'null', 'not_an_object'],
    ['a number', '42', 'not_an_object'],
    ['a string', '"hi"', 'not_an_object'],
    ['an array', '[{"subscribers":["a"]}]', 'not_an_object'],
    ['missing subscribers', '{"type":"notification"}', 'invalid_subscribers'],
    ['subscribers null', '{"subscribers":null}', 'invalid_subscribers'],
    ['subscribers a string', '{"subscribers":"PHID-USER-1"}', 'invalid_subscribers'],
    ['subscribers with a number', '{"subscribers":["a",1]}', 'invalid_subscribers'],
    ['subscribers an object', '{"subscribers":{"0":"a"}}', 'invalid_subscribers'],
    ['touched a string', '{"subscribers":["a"],"touched":"f1"}', 'invalid_touched'],
    ['touched with a number', '{"subscribers":["a"],"touched":[1]}', 'invalid_touched'],
    ['a uniqueID over 128 characters', `{"subscribers":["a"],"uniqueID":"${'u'.repeat(129)}"}`, 'invalid_unique_id'],
  ])('refuses %s as %s with a message', (_what, text, code) => {
    const check = parsePublishBody(text);
    expect(check.ok).toBe(false);
    if (!check.ok) {
      expect(check.code).toBe(code);
      expect(check.message.length).toBeGreaterThan(0);
    }
  });

  it('accepts a uniqueID of 128 characters, and leaves a uniqueID that is no string to the node', () => {
    expect(checkPublishBody({ subscribers: ['x'], uniqueID: 'u'.repeat(128) }).ok).toBe(true);
    expect(checkPublishBody({ subscribers: ['x'], uniqueID: 42 }).ok).toBe(true);
  });

  it('refuses a body nested deeper than MAX_MESSAGE_DEPTH, and takes one at the bound', () => {
    const nest = (depth: number): unknown => (depth === 0 ? 'x' : { a: [nest(depth - 1)] });
    // Each level of nest() is an object and an array: depth levels of both.
    expect(checkPublishBody({ subscribers: ['x'], deep: nest(31) }).ok).toBe(true); // 1 + 62 + ... within 64
    expect(checkPublishBody({ subscribers: ['x'], deep: nest(40) })).toMatchObject({ ok: false, code: 'too_deep' });
    const text = `{"subscribers":["a"],"deep":${'['.repeat(10_000)}${']'.repeat(10_000)}}`;
    expect(parsePublishBody(text)).toMatchObject({ ok: false, code: 'too_deep' });
  });

  it('checkPublishBody works on parsed values', () => {
    expect(checkPublishBody({ subscribers: ['x'] }).ok).toBe(true);
    expect(checkPublishBody([]).ok).toBe(false);
    expect(checkPublishBody(undefined).ok).toBe(false);
  });
});

describe('isValidInstance', () => {
  it('accepts names Aphlict paths produce and refuses empty, slash, tilde, space and over-long ones', () => {
    expect(isValidInstance('acme')).toBe(true);
    expect(isValidInstance('x'.repeat(128))).toBe(true);
    for (const bad of ['', 'a/b', 'a~b', 'a b', 'a\tb', 'a\u0000b', 'a\u007fb', 'x'.repeat(129)]) expect(isValidInstance(bad)).toBe(false);
    expect(isValidInstance('acmé-日本.x_1%20')).toBe(true);
  });
});

describe('fingerprints and ids', () => {
  it('makes 16-character fingerprints from the 55-character alphabet of Aphlict (no 0, 1, i, l, o, I, O)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const f = createFingerprint();
      expect(f).toMatch(/^[2-9a-hjkmnp-zA-HJ-NP-Z]{16}$/);
      seen.add(f);
    }
    expect(seen.size).toBe(200);
  });

  it('makes 32-hex message ids', () => {
    expect(createMessageId()).toMatch(/^[0-9a-f]{32}$/);
    expect(createMessageId()).not.toBe(createMessageId());
  });

  it('envelopeOf serialises the message once, keeping key order', () => {
    const message = { type: 'notification', subscribers: ['a'], touched: ['f'] };
    const env = envelopeOf('acme', 'id1', message, 123);
    expect(env).toEqual({
      id: 'id1',
      instance: 'acme',
      subscribers: ['a'],
      frame: '{"type":"notification","subscribers":["a"],"touched":["f"]}',
      acceptedAt: 123,
      touched: ['f'],
    });
  });
});
