// The socket factory of the callback client: the SSRF guard applied when connecting, on the
// address actually connected to. A name is resolved by the guard's lookup (every address it
// resolves to is judged, so DNS rebinding between a check and the connect cannot slip through);
// an IP literal, which net.connect would connect to without any lookup, is judged here first.
import { isIP } from 'node:net';
import { buildConnector } from 'undici';
import type { SsrfGuard } from './ssrf.js';

export function guardedConnector(guard: SsrfGuard, connectTimeoutMs: number): buildConnector.connector {
  // The timeout covers the lookup too (undici starts it when the socket is made).
  const connect = buildConnector({ timeout: connectTimeoutMs, lookup: guard.lookup as never });
  return (opts, callback) => {
    if (isIP(opts.hostname)) {
      const why = guard.refuse(opts.hostname);
      if (why) {
        // Asynchronously, as a failed connect would: undici is still inside its connect() here.
        const err = Object.assign(new Error(`callback refused: ${why}`), { code: 'INTAKE_SSRF_BLOCKED' });
        process.nextTick(callback, err, null);
        return;
      }
    }
    connect(opts, callback);
  };
}
