/**
 * Who sits where in the scale bench. A user is one PHID with 1 to 3 sockets (browser tabs),
 * each socket subscribed to its user's PHID only. Messages go to 5 users' PHIDs (as in
 * bench/load.mjs: `PHID-USER-` and the user's number on 20 digits), so a message has about
 * 10 recipients.
 *
 * Placements over the gateways with recipients:
 * - random: each socket on any of them (what a plain load balancer does);
 * - affinity: all sockets of a user on one of them (user k on gateway k mod D).
 * Gateways without recipients hold as many sockets as an average gateway with recipients,
 * of users whose PHIDs (`PHID-IDLE-…`) no message is ever addressed to.
 *
 * The plan is what bench/load.mjs's runPhase takes as a group (it draws the addressees of
 * each message from `random` over the first `count` users), and it can draw the same
 * addressees again (`addresseesFrom`) to tell which gateways each message must reach.
 */
import { createRandom, pickDistinct } from './stats.mjs';

export const userPhid = (k) => `PHID-USER-${String(k).padStart(20, '0')}`;
const idlePhid = (k) => `PHID-IDLE-${String(k).padStart(20, '0')}`;

/**
 * @param sockets   sockets on the gateways with recipients
 * @param gateways  all gateways, those with recipients first
 * @param withRecipients  how many of them (D)
 * @param ghostUsers  users addressed by messages who have no socket (default none)
 * @param idleSocketsPerGateway  sockets on each gateway without recipients (default sockets/D)
 * @param firstId  the first socket id (plans that share workers need distinct ids)
 */
export function planScale({ sockets, gateways, withRecipients, placement, seed, instance = 'default', ghostUsers = 0, idleSocketsPerGateway = Math.round(sockets / withRecipients), firstId = 0 }) {
  const D = withRecipients;
  const random = createRandom(seed);
  const specs = [];
  const listeners = new Map();
  /** Gateway index of every socket id, and the gateways of each user. */
  const gatewayOf = [];
  const userGateways = [];
  const add = (phid, gateway) => {
    // Ids are unique among every plan whose sockets share the workers (firstId apart).
    const id = firstId + specs.length;
    specs.push({ id, transport: 'raw', node: gateway, instance, phids: [phid], url: `ws://127.0.0.1:${gateways[gateway].clientPort}/~${instance}/` });
    gatewayOf.push(gateway);
    return id;
  };
  let users = 0;
  while (specs.length < sockets) {
    const k = users++;
    const phid = userPhid(k);
    const count = Math.min(1 + Math.floor(random() * 3), sockets - specs.length);
    const ids = [];
    const at = new Set();
    for (let s = 0; s < count; s++) {
      const g = placement === 'affinity' ? k % D : Math.floor(random() * D);
      ids.push(add(phid, g));
      at.add(g);
    }
    listeners.set(phid, ids);
    userGateways.push([...at]);
  }
  // Addressed users with no socket at all (a phase that publishes and delivers nothing).
  for (let k = 0; k < ghostUsers; k++) {
    listeners.set(userPhid(users++), []);
    userGateways.push([]);
  }
  // Gateways without recipients: an average gateway's share of sockets each, never addressed.
  let idleUsers = 0;
  for (let g = D; g < gateways.length; g++) {
    const target = specs.length + idleSocketsPerGateway;
    while (specs.length < target) {
      const phid = idlePhid(idleUsers++);
      const count = Math.min(1 + Math.floor(random() * 3), target - specs.length);
      for (let s = 0; s < count; s++) add(phid, g);
    }
  }
  const addresseeSeed = seed ^ 0x5eed;
  return {
    instance,
    transport: 'raw',
    // runPhase draws addressees from [0, count): the users, never the idle ones.
    count: users,
    specs,
    listeners,
    random: createRandom(addresseeSeed),
    placement,
    withRecipients: D,
    gatewayOf,
    userGateways,
    users,
    idleSockets: specs.length - gatewayOf.filter((g) => g < D).length,
    /** An idle user's PHID on gateway `g` (for the check that idle gateways are routed to when addressed). */
    idlePhidOn: (g) => specs.find((s) => s.node === g)?.phids[0],
    /** A second generator in step with `random`: draws the same addressees, message by message. */
    addresseesFrom: () => {
      const twin = createRandom(addresseeSeed);
      return (phidsPerMessage) => pickDistinct(twin, users, phidsPerMessage);
    },
  };
}

/**
 * Which gateways must get a copy of each message from Redis, for the `published` messages
 * of a phase (drawn by `draw` in the order runPhase drew them; message seq0+i went to
 * target (seq0+i) mod targets): with interest, every gateway with a recipient but the
 * accepting one; with broadcast, every gateway (the accepting one gets its echo back).
 * Returns the totals and the mean number of gateways with a recipient per message.
 */
export function expectedCopies({ plan, draw, published, seq0, phidsPerMessage, targets, gatewayCount, mode }) {
  let interest = 0;
  let gatewaysWithRecipients = 0;
  for (let i = 0; i < published; i++) {
    const at = new Set();
    for (const k of draw(phidsPerMessage)) for (const g of plan.userGateways[k]) at.add(g);
    gatewaysWithRecipients += at.size;
    const origin = targets[(seq0 + i) % targets.length];
    interest += at.size - (at.has(origin) ? 1 : 0);
  }
  return {
    copies: mode === 'interest' ? interest : published * gatewayCount,
    gatewaysWithRecipients: published ? gatewaysWithRecipients / published : 0,
  };
}
