// intake spool inspect|verify: read segment files without touching them.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { decodeSegment, RecordKind, type DecodedSegment } from '../spool/format.js';
import { OPEN_EXT, SEALED_EXT } from '../spool/layout.js';
import { spoolOf } from './options.js';

const KIND_NAMES: Record<number, string> = Object.fromEntries(Object.entries(RecordKind).map(([k, v]) => [v, k]));

export function registerSpool(program: Command): void {
  const spool = program.command('spool').description('inspect and check spool files');

  spool
    .command('inspect <file>')
    .description('print a segment file: header, every record, and any damage')
    .option('--json', 'one JSON document instead of text')
    .action(async (file: string, opts: { json?: boolean }) => {
      const dec = decodeSegment(await fsp.readFile(file));
      if (opts.json) {
        process.stdout.write(
          JSON.stringify(
            {
              file,
              header: dec.header,
              headerProblem: dec.headerProblem,
              records: dec.records.map((r) => ({ offset: r.offset, length: r.length, kind: KIND_NAMES[r.kind] ?? r.kind, ...parsed(r.json) })),
              gaps: dec.gaps,
              tail: dec.tail,
            },
            null,
            2,
          ) + '\n',
        );
      } else {
        const out: string[] = [`file: ${file}`];
        if (dec.header) out.push(`header: format v${dec.header.version}, node ${dec.header.node}, segment ${dec.header.segment}, created ${new Date(dec.header.createdAt).toISOString()}`);
        if (dec.headerProblem) out.push(`header problem: ${dec.headerProblem.code}: ${dec.headerProblem.message}`);
        for (const r of dec.records) out.push(`@${r.offset} ${KIND_NAMES[r.kind] ?? r.kind} (${r.length} bytes) ${r.json}`);
        for (const g of dec.gaps) out.push(`DAMAGE @${g.offset} ${g.length} bytes: ${g.reason}`);
        if (dec.tail) out.push(`TAIL @${dec.tail.offset} ${dec.tail.length} bytes hold no intact record`);
        out.push(`records: ${dec.records.length}`);
        process.stdout.write(out.join('\n') + '\n');
      }
      // Exit 1 whenever not every byte could be read as records, as `verify` does.
      const v = verdict(dec, file.endsWith(OPEN_EXT));
      if (v === 'corrupt' || v === 'unsupported') process.exitCode = 1;
    });

  spool
    .command('verify [dir]')
    .description('check every segment under a directory (default: the spool root, env INTAKE_SPOOL or ./spool); exit 1 if any is damaged')
    .option('--json', 'one JSON document instead of text')
    .action(async (dir: string | undefined, opts: { json?: boolean }) => {
      const root = dir ?? spoolOf({});
      const results: { file: string; verdict: string; records: number; detail?: string }[] = [];
      for (const file of await findSegments(root)) {
        let dec: DecodedSegment;
        try {
          dec = decodeSegment(await fsp.readFile(file));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // drained meanwhile
          throw err;
        }
        const v = verdict(dec, file.endsWith(OPEN_EXT));
        const detail = dec.headerProblem?.message ?? (dec.gaps.length ? `${dec.gaps.length} damaged range(s)` : dec.tail ? `${dec.tail.length} bytes of tail damage` : undefined);
        results.push({ file, verdict: v, records: dec.records.length, ...(detail ? { detail } : {}) });
      }
      const bad = results.filter((r) => r.verdict === 'corrupt' || r.verdict === 'unsupported');
      if (opts.json) process.stdout.write(JSON.stringify({ files: results.length, bad: bad.length, results }, null, 2) + '\n');
      else {
        for (const r of results) process.stdout.write(`${r.verdict.padEnd(11)} ${r.file} (${r.records} records${r.detail ? `; ${r.detail}` : ''})\n`);
        process.stdout.write(`${results.length} file(s), ${bad.length} damaged or unreadable\n`);
      }
      if (bad.length > 0) process.exitCode = 1;
    });
}

/** An intact frame whose body is not JSON (the drainer quarantines it) is shown raw. */
function parsed(json: string): { record: unknown } | { raw: string } {
  try {
    return { record: JSON.parse(json) as unknown };
  } catch {
    return { raw: json };
  }
}

/** ok, torn-tail (an open segment: the tail is cut on recovery), corrupt, unsupported. */
function verdict(dec: DecodedSegment, open: boolean): 'ok' | 'torn-tail' | 'corrupt' | 'unsupported' {
  if (dec.headerProblem) {
    if (dec.headerProblem.code === 'unsupported-version') return 'unsupported';
    return open && dec.headerProblem.code === 'truncated' ? 'torn-tail' : 'corrupt';
  }
  if (dec.gaps.length > 0) return 'corrupt';
  if (dec.tail) return open ? 'torn-tail' : 'corrupt';
  return 'ok';
}

async function findSegments(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, depth: number): Promise<void> => {
    let entries;
    try {
      entries = await fsp.readdir(d, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory() && !e.name.endsWith('.lock') && e.name !== 'quarantine' && depth < 4) await walk(p, depth + 1);
      else if (e.isFile() && (e.name.endsWith(SEALED_EXT) || e.name.endsWith(OPEN_EXT))) out.push(p);
    }
  };
  await walk(dir, 0);
  return out;
}
