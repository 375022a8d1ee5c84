// Micro-benchmark of the JSON body parser (src/http/json-body.ts): µs per body of about 1 KiB,
// for the checks that keep what was sent exactly (UTF-8, duplicate keys, numbers, depth) against
// JSON.parse alone. Not part of `npm run bench` (it measures one function, not the daemon):
// `npx tsc -p tsconfig.json && node dist/bench/json-body.js`.
import { fileURLToPath } from 'node:url';
import { parseJsonBody } from '../src/http/json-body.js';

/** Bodies of about 1 KiB in three shapes: a typical request, mostly numbers, mostly text. */
export function bodies(): Record<string, Buffer> {
  const typical = {
    payload: {
      order: { id: 'ord_8a7c2f', customer: { name: 'Zoë Müller', email: 'zoe@example.com', tags: ['vip', 'eu'] } },
      lines: Array.from({ length: 10 }, (_, i) => ({ sku: `SKU-${1000 + i}`, qty: i + 1, price: 19.99 + i, note: i % 2 ? null : 'gift wrap' })),
      total: 187.43,
      created: '2026-11-30T15:30:00Z',
      flags: { express: true, paid: false },
    },
    callback_url: 'https://hooks.example.com/intake/orders',
    metadata: { source: 'checkout', attempt: 1, trace: '4bf92f3577b34da6a3ce929d0e0e4736' },
  };
  const numbers = { payload: { samples: Array.from({ length: 110 }, (_, i) => Math.round(Math.sin(i) * 1e6) / 1e3) }, callback_url: 'https://hooks.example.com/x' };
  const text = { payload: { text: 'Lorem ipsum dolor sit amet, consectetur adipiscing elit — ünïcødé 漢字 🎉 "quoted" \\ '.repeat(10) }, callback_url: 'https://hooks.example.com/x' };
  return Object.fromEntries(Object.entries({ typical, numbers, text }).map(([k, v]) => [k, Buffer.from(JSON.stringify(v))]));
}

/** The best of many short rounds: on a shared machine the quiet moments are the measure. */
function usPer(fn: () => void): number {
  for (let i = 0; i < 5000; i++) fn(); // warm up
  let best = Infinity;
  for (let round = 0; round < 500; round++) {
    const n = 200;
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t) / 1000 / n);
  }
  return best;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [name, buf] of Object.entries(bodies())) {
  const plain = usPer(() => JSON.parse(buf.toString('utf8')));
  const checked = usPer(() => parseJsonBody(buf, 64));
    console.log(`${name.padEnd(8)} ${String(buf.length).padStart(5)} bytes  JSON.parse ${plain.toFixed(2)} µs  parseJsonBody ${checked.toFixed(2)} µs  (${(checked / plain).toFixed(2)}x)`);
}
}
