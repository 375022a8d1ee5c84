// What one node's spool folder holds right now, decoded: the ids of its intact request records
// and any damage in its sealed files. Fault tests compare it with what the clients were told.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeSegment } from '../../src/spool/format.js';
import { parseRequestRecord } from '../../src/spool/records.js';

export interface NodeSpool {
  /** Ids in intact request records of every segment file (open or sealed). */
  ids: Set<string>;
  /** How many intact records of each id the sealed files hold (more than one is a duplicate). */
  sealedCopies: Map<string, number>;
  files: string[];
  /** Damage found in sealed files (they must be whole: the writer cuts to its last sync before sealing). */
  sealedDamage: string[];
}

/** The node's spool files as they are now. A file sealed (renamed) between the listing and its read is looked at again. */
export function nodeSpoolFiles(spool: string, node: string): NodeSpool {
  for (let attempt = 1; ; attempt++) {
    try {
      return readOnce(join(spool, 'nodes', node));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 5) throw err;
    }
  }
}

function readOnce(dir: string): NodeSpool {
  const out: NodeSpool = { ids: new Set(), sealedCopies: new Map(), files: [], sealedDamage: [] };
  for (const f of readdirSync(dir).sort()) {
    if (!f.endsWith('.seg') && !f.endsWith('.open')) continue;
    out.files.push(f);
    const dec = decodeSegment(readFileSync(join(dir, f)));
    const sealed = f.endsWith('.seg');
    if (dec.headerProblem) {
      if (sealed) out.sealedDamage.push(`${f}: header ${dec.headerProblem.code}`);
      continue;
    }
    for (const rec of dec.records) {
      const r = parseRequestRecord(rec.json);
      if (r) {
        out.ids.add(r.id);
        if (sealed) out.sealedCopies.set(r.id, (out.sealedCopies.get(r.id) ?? 0) + 1);
      } else if (sealed) out.sealedDamage.push(`${f}@${rec.offset}: not a request record`);
    }
    if (sealed && dec.gaps.length > 0) out.sealedDamage.push(`${f}: ${dec.gaps.length} damaged ranges`);
    if (sealed && dec.tail) out.sealedDamage.push(`${f}: ${dec.tail.length} bytes of torn tail at ${dec.tail.offset}`);
  }
  return out;
}
