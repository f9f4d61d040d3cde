/**
 * The publish path's promises: a bus publish that fails while the history write is still
 * under way is handled where it is made (the library default, where the bus publishes by
 * itself rather than inside the history script).
 */
import { silentLogger, type Envelope, type Position } from '@tidings/protocol';
import { MemoryBus, MemoryBusHub } from '@tidings/bus';
import { MemoryHistory } from '@tidings/history';
import { TidingsNode } from './node';

/** A real memory history whose appends take a while, as a remote store's do. */
class SlowHistory extends MemoryHistory {
  override async append(entry: Envelope): Promise<Position> {
    await new Promise((r) => setTimeout(r, 50));
    return super.append(entry);
  }
}

describe('node: publish', () => {
  const escaped: unknown[] = [];
  const onEscape = (reason: unknown) => escaped.push(reason);
  beforeAll(() => process.on('unhandledRejection', onEscape));
  afterAll(() => process.off('unhandledRejection', onEscape));

  it('handles a bus publish that rejects before the history write resolves', async () => {
    const hub = new MemoryBusHub();
    const bus = new MemoryBus({ hub });
    await bus.start();
    hub.setUp(false); // publish() now rejects at once with BUS_DOWN
    const history = new SlowHistory();
    const node = new TidingsNode({ history, historyMaxAgeMs: 60_000, maxSubscriptionsPerSocket: 10, logger: silentLogger, bus });
    const result = await node.publish('default', { subscribers: ['PHID-1'], key: 'k' });
    await new Promise((r) => setTimeout(r, 20));
    expect(result.status).toBe('accepted');
    expect(await history.stats('default')).toMatchObject({ size: 1 });
    expect(escaped).toEqual([]);
    await bus.close();
  });
});
