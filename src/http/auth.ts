// Who is calling: the API key in `Authorization: Bearer <key>` names a tenant and its scopes.
// Every route declares the scope it needs in its config ({scope: 'submit' | 'process' |
// 'admin' | 'public'}); a route without one (an unknown path) needs any valid key, so nothing
// is reachable without a key once keys exist. While the cluster has no key at all a node runs
// open (everything as tenant `default` with every scope): the start check only allows that on
// a loopback address or with --insecure-no-auth.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Errors } from '../errors.js';
import { verifyKey, type KeysFile, type Scope } from '../cluster/keys.js';

export const OPEN_TENANT = 'default';

export interface Principal {
  tenant: string;
  scopes: ReadonlySet<Scope>;
  /** Lanes a process key may claim from; null for every lane. */
  lanes: readonly string[] | null;
  /** The key's id, or null in the open mode. */
  keyId: string | null;
}

export type RouteScope = Scope | 'public';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
  interface FastifyContextConfig {
    scope?: RouteScope;
  }
}

const OPEN: Principal = { tenant: OPEN_TENANT, scopes: new Set<Scope>(['submit', 'process', 'admin']), lanes: null, keyId: null };

export class Authenticator {
  private keys: KeysFile = { keys: [] };

  /** The keys as the control loop last read them (a new or revoked key counts from the next request on). */
  update(keys: KeysFile): void {
    this.keys = keys;
  }

  /** Whether any key exists (revoked ones count): then every request needs one. */
  get enabled(): boolean {
    return this.keys.keys.length > 0;
  }

  authenticate(header: string | undefined): Principal {
    if (!this.enabled) return OPEN;
    if (!header) throw Errors.unauthorized('an API key is required: Authorization: Bearer <key>');
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) throw Errors.unauthorized('the Authorization header must be "Bearer <key>"');
    const v = verifyKey(this.keys, m[1]!);
    if ('problem' in v) throw Errors.unauthorized(v.problem === 'revoked' ? 'this API key has been revoked' : 'this API key is not valid');
    const k = v.key;
    return { tenant: k.tenant, scopes: new Set(k.scopes), lanes: k.lanes, keyId: k.id };
  }
}

/** Checks every request against its route's scope before the body is read. */
export function registerAuth(app: FastifyInstance, auth: Authenticator): void {
  app.decorateRequest('principal', null as unknown as Principal);
  app.addHook('onRequest', async (req: FastifyRequest, reply) => {
    const scope = req.routeOptions.config?.scope;
    if (scope === 'public') return;
    try {
      const p = auth.authenticate(req.headers.authorization);
      if (scope && !p.scopes.has(scope)) throw Errors.forbidden(`this API key lacks the ${scope} scope`);
      req.principal = p;
    } catch (err) {
      void reply.header('www-authenticate', 'Bearer');
      throw err;
    }
  });
}
