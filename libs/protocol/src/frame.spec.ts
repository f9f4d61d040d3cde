import { DEFAULT_REPLAY_AGE_MS, PONG_FRAME, parseClientFrame } from './frame';
import { framedWithPosition, positionsFrame, replayedFrame } from './positions';

describe('parseClientFrame', () => {
  it('decodes subscribe and unsubscribe with an array of PHIDs', () => {
    expect(parseClientFrame('{"command":"subscribe","data":["PHID-USER-1","PHID-TASK-2"]}')).toEqual({
      command: 'subscribe',
      phids: ['PHID-USER-1', 'PHID-TASK-2'],
    });
    expect(parseClientFrame('{"command":"unsubscribe","data":["PHID-USER-1"]}')).toEqual({
      command: 'unsubscribe',
      phids: ['PHID-USER-1'],
    });
    expect(parseClientFrame('{"command":"subscribe","data":[]}')).toEqual({ command: 'subscribe', phids: [] });
  });

  it('keeps PHIDs that name Object.prototype members as ordinary strings', () => {
    expect(parseClientFrame('{"command":"subscribe","data":["constructor","__proto__","toString"]}')).toEqual({
      command: 'subscribe',
      phids: ['constructor', '__proto__', 'toString'],
    });
  });

  it('decodes ping, ignoring any data', () => {
    expect(parseClientFrame('{"command":"ping"}')).toEqual({ command: 'ping' });
    expect(parseClientFrame('{"command":"ping","data":null}')).toEqual({ command: 'ping' });
  });

  it('decodes replay with an age, and the 60 s default as Aphlict does (`age || 60000`)', () => {
    expect(parseClientFrame('{"command":"replay","data":{"age":1500}}')).toEqual({ command: 'replay', ageMs: 1500 });
    expect(DEFAULT_REPLAY_AGE_MS).toBe(60_000);
    for (const data of ['{}', '{"age":0}', '{"age":null}', 'null']) {
      expect(parseClientFrame(`{"command":"replay","data":${data}}`)).toEqual({ command: 'replay', ageMs: 60_000 });
    }
    expect(parseClientFrame('{"command":"replay"}')).toEqual({ command: 'replay', ageMs: 60_000 });
  });

  it('ignores a replay whose age is not a non-negative number, or whose data is not an object', () => {
    for (const data of ['{"age":-5}', '{"age":"100"}', '{"age":true}', '[1]', '42', '"x"']) {
      const frame = parseClientFrame(`{"command":"replay","data":${data}}`);
      expect(frame.command).toBe('ignored');
    }
  });

  it.each([
    ['not JSON', 'hello', /not JSON/],
    ['empty text', '', /not JSON/],
    ['null', 'null', /not a JSON object/],
    ['a number', '42', /not a JSON object/],
    ['a string', '"subscribe"', /not a JSON object/],
    ['an array', '[]', /not a JSON object/],
    ['an array of a command', '[{"command":"ping"}]', /not a JSON object/],
    ['a subscribe without data', '{"command":"subscribe"}', /array of strings/],
    ['a subscribe with null data', '{"command":"subscribe","data":null}', /array of strings/],
    ['an unsubscribe without data', '{"command":"unsubscribe"}', /array of strings/],
    ['a subscribe with a string', '{"command":"subscribe","data":"PHID-X"}', /array of strings/],
    ['a subscribe with a number in the list', '{"command":"subscribe","data":["PHID-X",7]}', /array of strings/],
    ['a subscribe with an object', '{"command":"subscribe","data":{"0":"PHID-X"}}', /array of strings/],
    ['an unknown command', '{"command":"dance","data":[]}', /unknown command "dance"/],
    ['no command', '{"data":["PHID-X"]}', /unknown command <none>/],
    ['a command that is not a string', '{"command":7}', /unknown command <none>/],
    ['a command named like a prototype member', '{"command":"constructor"}', /unknown command/],
  ])('ignores %s with a reason', (_what, text, reason) => {
    const frame = parseClientFrame(text);
    expect(frame.command).toBe('ignored');
    expect(frame.command === 'ignored' && frame.reason).toMatch(reason);
  });

  it('bounds the echoed command name in the reason', () => {
    const frame = parseClientFrame(JSON.stringify({ command: 'x'.repeat(10_000) }));
    expect(frame.command === 'ignored' && frame.reason.length).toBeLessThan(100);
  });

  it('has the pong frame Aphlict sends', () => {
    expect(PONG_FRAME).toBe('{"type":"pong"}');
  });
});

describe('positions frames', () => {
  it('decodes positions on and off, and replay by position', () => {
    expect(parseClientFrame('{"command":"positions","data":true}')).toEqual({ command: 'positions', enabled: true });
    expect(parseClientFrame('{"command":"positions","data":false}')).toEqual({ command: 'positions', enabled: false });
    expect(parseClientFrame('{"command":"positions"}').command).toBe('ignored');
    expect(parseClientFrame('{"command":"replay","data":{"since":{"offset":7,"epoch":"abc"}}}')).toEqual({
      command: 'replay-since',
      since: { offset: 7, epoch: 'abc' },
    });
    for (const since of ['null', '{}', '{"offset":-1,"epoch":"a"}', '{"offset":1.5,"epoch":"a"}', '{"offset":1,"epoch":""}', '{"offset":"1","epoch":"a"}', `{"offset":1,"epoch":"${'e'.repeat(65)}"}`]) {
      expect(parseClientFrame(`{"command":"replay","data":{"since":${since}}}`).command).toBe('ignored');
    }
  });

  it('adds a position as the last key of a frame, leaving the rest byte for byte', () => {
    const frame = '{"type":"notification","key":"k","subscribers":["P"],"touched":["f"]}';
    const positioned = framedWithPosition(frame, { offset: 12, epoch: 'e1' });
    expect(positioned.startsWith(frame.slice(0, -1))).toBe(true);
    expect(JSON.parse(positioned)).toEqual({ ...JSON.parse(frame), tidings: { offset: 12, epoch: 'e1' } });
    expect(JSON.parse(framedWithPosition('{}', { offset: 1, epoch: 'e' }))).toEqual({ tidings: { offset: 1, epoch: 'e' } });
    expect(JSON.parse(positionsFrame({ offset: 3, epoch: 'e' }))).toEqual({ type: 'positions', offset: 3, epoch: 'e' });
    expect(JSON.parse(replayedFrame({ recovered: false, offset: 3, epoch: 'e' }))).toEqual({ type: 'replayed', recovered: false, offset: 3, epoch: 'e' });
  });
});
