// intake verify [--json]: balance the cluster's books (src/drain/books.ts says how, and
// docs/operations.md, "intake verify", what each figure means). Exit 0 when they balance, 1
// naming each difference.
import type { Command } from 'commander';
import { callbackCounts, computeBooks, type Books } from '../drain/books.js';
import { openStore } from '../store/open.js';
import { fail, spoolFlag, spoolOf } from './options.js';

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('balance the books: every accepted request stored, in a spool or quarantined; every completion\'s callback accounted for (exit 1 naming each difference)')
    .option(...spoolFlag)
    .option('--db <url>', 'the database (env INTAKE_DB)')
    .option('--json', 'print as JSON')
    .action(async (o: { spool?: string; db?: string; json?: boolean }) => {
      const root = spoolOf(o);
      const dbUrl = o.db ?? process.env.INTAKE_DB;
      if (!dbUrl) fail('verify needs the database: --db <url> (or INTAKE_DB)');
      const store = await openStore(dbUrl);
      let books: Books;
      try {
        const schema = await store.schema();
        if (schema.current < 6) fail(`database schema is v${schema.current}: the books start at v6; run \`intake migrate\``);
        const tty = process.stderr.isTTY;
        books = await computeBooks(root, store, tty ? (done, of) => process.stderr.write(`\rreading the spool: ${done}/${of} segments`) : undefined);
        if (tty) process.stderr.write('\r\x1b[K');
      } finally {
        await store.close();
      }
      process.stdout.write(o.json ? JSON.stringify({ balanced: books.differences.length === 0, ...books }, null, 2) + '\n' : render(books));
      if (books.differences.length > 0) process.exitCode = 1;
    });
}

function render(b: Books): string {
  const rows = [['NODE', 'ACCEPTED', 'STORED', 'IN SPOOL', 'QUARANTINED', 'SEGMENTS DRAINED', 'FOLDED', 'IN SPOOL', 'MISSING', 'DAMAGED']];
  const row = (name: string, n: Books['total'], missing: number) =>
    [name, n.accepted, n.stored, n.inSpool, n.quarantined, n.segments.drained, n.segments.folded, n.segments.inSpool, missing, n.damaged].map(String);
  for (const n of b.nodes) rows.push(row(n.node, { ...n, segments: { ...n.segments, missing: n.segments.missing.length } }, n.segments.missing.length));
  rows.push(row('total', b.total, b.total.segments.missing));
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd());
  const c = callbackCounts(b.callbacks);
  const spool = b.callbacks.spool;
  lines.push(
    '',
    'accepted = stored + in spool + quarantined (request records: each 202 is one; a retry with the same Idempotency-Key is another)',
    'folded: drained segments counted from their node\'s checkpoint (docs/operations.md, "Checkpoints")',
    `database: ${b.database.rows} requests (distinct ids), ${b.database.rowsInserted} ever inserted`,
    `callbacks: ${c.completed} completed = ${c.delivered} delivered + ${c.pending} pending + ${c.parked} parked + ${c.dead} dead + ${c.gone} gone (410)`,
    `failed-callback spool: ${spool.retry} waiting to retry, ${spool.dead} dead`,
    '',
  );
  if (b.differences.length === 0) lines.push('the books balance');
  else lines.push(`${b.differences.length} difference(s):`, ...b.differences.map((d) => `  ${d}`));
  return lines.join('\n') + '\n';
}
