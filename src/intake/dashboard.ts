// GET /dashboard: the operator's page (web/dashboard/: plain HTML, JS and CSS, no build step),
// read once when the server is built and served from memory. The files hold no data and are
// public; the page asks for an admin key and sends it to the data endpoints (/v1/cluster,
// /v1/callbacks/*), which need the admin scope once the cluster has keys.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../http/auth.js';
import { packageRoot } from '../package.js';
import { dashboardAuthSchema, dashboardFileSchema } from './schemas.js';

const FILES = [
  { route: '/dashboard', file: 'index.html', type: 'text/html; charset=utf-8' },
  { route: '/dashboard/app.js', file: 'app.js', type: 'text/javascript; charset=utf-8' },
  { route: '/dashboard/style.css', file: 'style.css', type: 'text/css; charset=utf-8' },
] as const;

// Only the page's own files run, and only this node is spoken to: an injected script or a
// framing page cannot read the key the page keeps.
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

export function registerDashboard(app: FastifyInstance, auth: Authenticator, dir = join(packageRoot, 'web', 'dashboard')): void {
  const config = { scope: 'public' } as const;
  // Whether the page must ask for a key: it then never sends a request it knows will be refused.
  // Public, and no secret: any data endpoint answering 401 tells the same.
  app.get('/dashboard/auth', { config, schema: dashboardAuthSchema }, async () => ({ key_required: auth.enabled }));
  for (const f of FILES) {
    const body = readFileSync(join(dir, f.file));
    app.get(f.route, { config, schema: dashboardFileSchema(f.file, f.type) }, async (_req, reply) => {
      void reply.headers({ ...SECURITY_HEADERS, 'content-type': f.type });
      return reply.send(body);
    });
  }
}
