/**
 * The authentication parts, built from `auth.*` and `limits.*`: the admin port's gate, the
 * client token verifier, the client address resolver and the publish rate limiter. The
 * public key file is read here, so @tidings/auth does no I/O. With Aphlict's defaults every
 * part is inert (the gate lets everything in, tokens are not asked for, no limiter).
 */
import { readFileSync } from 'node:fs';
import {
  CidrError,
  ClientTokenConfigError,
  createAdminAuth,
  createClientAddressResolver,
  createClientTokenVerifier,
  createRateLimiter,
  type AdminAuth,
  type ClientAddressResolver,
  type ClientTokenVerifier,
  type RateLimiter,
} from '@tidings/auth';
import { ConfigError, type TidingsConfig } from '@tidings/protocol';

export interface AuthCollaborators {
  /** `auth.adminTokens` and `auth.adminAllow`. */
  adminAuth: AdminAuth;
  /** `auth.clientTokens`; `required` is false in mode `off`. */
  clientTokens: ClientTokenVerifier;
  /** `limits.trustProxy`: the address a client connects from. */
  clientAddress: ClientAddressResolver;
  /** `limits.maxPublishesPerSecond` per admin token or source address; undefined when 0 (no limit). */
  publishLimiter: RateLimiter | undefined;
}

/** Builds them; throws ConfigError naming the key when the key file cannot be read or used. */
export function createAuthCollaborators(config: TidingsConfig, readFile: (path: string) => string = (p) => readFileSync(p, 'utf8')): AuthCollaborators {
  const { adminTokens, adminAllow, clientTokens } = config.auth;
  let publicKeyPem = '';
  if (clientTokens.publicKeyFile) {
    try {
      publicKeyPem = readFile(clientTokens.publicKeyFile);
    } catch (err) {
      throw new ConfigError(`auth.clientTokens.publicKeyFile: cannot read "${clientTokens.publicKeyFile}": ${(err as Error).message}`);
    }
  }
  try {
    return {
      adminAuth: createAdminAuth({ tokens: adminTokens, allow: adminAllow }),
      clientTokens: createClientTokenVerifier({ ...clientTokens, publicKeyPem }),
      clientAddress: createClientAddressResolver(config.limits.trustProxy),
      publishLimiter: config.limits.maxPublishesPerSecond > 0 ? createRateLimiter({ ratePerSecond: config.limits.maxPublishesPerSecond }) : undefined,
    };
  } catch (err) {
    // The config schema has checked the same rules; these name the key for what only the files show.
    if (err instanceof ClientTokenConfigError) throw new ConfigError(`auth.clientTokens.${err.message}`);
    if (err instanceof CidrError) throw new ConfigError(err.message);
    throw err;
  }
}
