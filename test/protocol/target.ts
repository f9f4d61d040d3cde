/**
 * The server a black-box protocol suite talks to: TIDINGS_TEST_ADMIN_URL and
 * TIDINGS_TEST_CLIENT_URL when both are set (a real Aphlict, or any running gateway),
 * otherwise a Tidings gateway process this suite spawns and stops.
 */
import { spawnGateway, type GatewayProcess } from '@tidings/testing';

export interface Target {
  adminUrl: string;
  /** ws://host:port, without a path. */
  clientUrl: string;
  /** http://host:port of the client port, for plain-HTTP requests. */
  clientHttpUrl: string;
  /** What was tested, for test names and failure messages. */
  label: string;
  stop(): Promise<void>;
}

export async function openTarget(): Promise<Target> {
  const admin = process.env.TIDINGS_TEST_ADMIN_URL;
  const client = process.env.TIDINGS_TEST_CLIENT_URL;
  if (!!admin !== !!client) {
    throw new Error('set both TIDINGS_TEST_ADMIN_URL and TIDINGS_TEST_CLIENT_URL, or neither');
  }
  if (admin && client) {
    const clientUrl = client.replace(/\/+$/, '');
    return {
      adminUrl: admin.replace(/\/+$/, ''),
      clientUrl,
      clientHttpUrl: clientUrl.replace(/^ws/, 'http'),
      label: `external server ${admin} / ${client}`,
      async stop() {
        // not ours
      },
    };
  }
  const gw: GatewayProcess = await spawnGateway();
  return {
    adminUrl: gw.adminUrl,
    clientUrl: gw.clientUrl,
    clientHttpUrl: gw.clientUrl.replace(/^ws/, 'http'),
    label: `spawned Tidings gateway pid ${gw.pid}`,
    async stop() {
      await gw.stop('SIGTERM');
    },
  };
}

/** A tag unique to this run, so repeated runs against one long-lived server do not collide. */
export const RUN = `${process.pid.toString(36)}${Date.now().toString(36)}`;

/** Aphlict's fingerprint alphabet (55 characters) and length. */
export const FINGERPRINT_PATTERN = /^[2-9a-hjkmnp-zA-HJ-NP-Z]{16}$/;
