// The books of a cluster, for `intake verify` (docs/operations.md, "intake verify").
//
// What "accepted" means: a request record durable in a node's segment. Every 202 is one such
// record (written and fdatasynced before the answer), and so is every schedule tick; a client's
// retry with the same Idempotency-Key is a second record and a second acceptance, of the same
// id. So accepted counts acknowledgements, and the database's rows count distinct ids.
//
// Where each accepted record is, per node:
//   stored       its segment was drained and the record's id is in the database (inserted by
//                it, or found there: a retry, a re-drain, a direct insert)
//   in spool     its segment is still under nodes/<node>/ (open or sealed), read here
//   quarantined  the drain quarantined it (db-refused, idempotency-conflict)
// A drained segment's counts come from its row in drained_segments, written by the drainer
// after the segment's rows are committed and before the file is deleted, so no crash can count
// a segment twice or not at all (a segment both drained and still present counts once, from the
// row). That makes accepted = stored + in spool + quarantined by construction; the evidence
// that nothing was lost is in the checks that are not:
//   1. every segment a node ever acknowledged a request in (its segments.log) is drained, in the
//      spool or in quarantine: a vanished segment file is named;
//   2. the database holds as many rows as were ever inserted (requests_inserted, counted in each
//      insert's own transaction): a lost row is counted;
//   3. every record a drain quarantined has its report in quarantine/;
//   4. no damaged bytes (quarantined or still in the spool) that may have held requests;
//   5. callbacks: every completed request has its callback, which is delivered, pending,
//      parked, dead or gone.
// Checkpoints (schema v7, books-fold.ts): a node's oldest drained segments folded into one row
// of sums, and the bytes of its segments.log they account for; the log is read from there on,
// and a line the database's checkpoint covers by the time it is read was folded meanwhile.
// Reading order matters on a live cluster: the checkpoints' offsets, segment logs, then the
// spool's files, then the database, then quarantine/. A segment drained meanwhile is then found in the database (its row
// is written before its file goes), and its quarantine reports (written before its row) too.
import { promises as fsp } from 'node:fs';
import { basename, join } from 'node:path';
import { deadDir, retryDir } from '../callbacks/failed-spool.js';
import { listNodes, listSegments, OPEN_EXT, quarantineDir, SEALED_EXT, sealedPath } from '../spool/layout.js';
import type { QuarantineReport } from '../spool/quarantine.js';
import { readSegmentLogFrom, SEGMENT_LOG, type LoggedSegment } from '../spool/segment-log.js';
import type { CallbackStatus, FoldRequest, Store } from '../store/store.js';
import { planFolds } from './books-fold.js';
import { parseSegment } from './parse-segment.js';

export interface NodeBooks {
  node: string;
  accepted: number;
  stored: number;
  inSpool: number;
  quarantined: number;
  /** drained: every segment drained, of which folded: those in the node's checkpoint. */
  segments: { drained: number; folded: number; inSpool: number; missing: string[] };
  /** Damaged byte ranges of this node's segments (in quarantine or still in the spool): content unknown. */
  damaged: number;
}

export interface Books {
  nodes: NodeBooks[];
  total: Omit<NodeBooks, 'node' | 'segments'> & { segments: { drained: number; folded: number; inSpool: number; missing: number } };
  database: { rows: number; rowsInserted: number };
  callbacks: { completed: number } & Record<CallbackStatus, number> & { spool: { retry: number; dead: number } };
  /** Every difference found, each naming where to look. Empty: the books balance. */
  differences: string[];
}

/** The callbacks as operators count them: one being sent right now is still pending. */
export interface CallbackCounts {
  completed: number;
  delivered: number;
  pending: number;
  parked: number;
  dead: number;
  gone: number;
}

export function callbackCounts(c: { completed: number } & Record<CallbackStatus, number>): CallbackCounts {
  return { completed: c.completed, delivered: c.delivered, pending: c.pending + c.sending, parked: c.parked, dead: c.dead, gone: c.gone };
}

/** Reasons under which a whole, known request record is quarantined (everything else is damage). */
const RECORD_REASONS = new Set(['db-refused', 'idempotency-conflict']);
/**
 * Quarantined bytes that were never acknowledged: the torn tail of a crashed node's open segment
 * (recover.ts) is a batch whose write did not finish, so its fdatasync, and its 202, never came.
 */
const NEVER_ACKNOWLEDGED = new Set(['torn-tail']);

const segmentOfFile = (name: string) => name.replace(/@.*$/, '').replace(new RegExp(`(\\${SEALED_EXT}|\\${OPEN_EXT})$`), '');

async function readDirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

async function readIfPresent(path: string): Promise<Buffer | null> {
  try {
    return await fsp.readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

interface ReportFile extends QuarantineReport {
  file: string;
  node: string | null;
  segment: string | null;
}

async function readReports(root: string): Promise<ReportFile[]> {
  const dir = quarantineDir(root);
  const out: ReportFile[] = [];
  for (const name of (await readDirOrEmpty(dir)).filter((n) => n.endsWith('.json')).sort()) {
    let r: QuarantineReport;
    try {
      r = JSON.parse(await fsp.readFile(join(dir, name), 'utf8')) as QuarantineReport;
    } catch {
      continue; // not a report (or being written): its .bin is counted by nothing
    }
    const m = /^nodes\/([^/]+)\/([^/]+)$/.exec(r.source ?? '');
    out.push({ ...r, file: `quarantine/${name}`, node: m?.[1] ?? null, segment: m ? segmentOfFile(m[2]!) : null });
  }
  return out;
}

/**
 * Read everything and balance the books. `progress` is told each spool file read (for a TTY
 * line). With `planFolds`, also say which drained segments may be folded into their node's
 * checkpoint now (books-fold.ts; the books keeper folds them).
 */
export async function computeBooks(
  root: string,
  store: Store,
  progress?: (done: number, of: number) => void,
  o: { planFolds?: { foldAfterMs: number } } = {},
): Promise<Books & { folds?: FoldRequest[] }> {
  const differences: string[] = [];
  // 0. The checkpoints: each node's log is read from where its checkpoint stops.
  const startAt = new Map((await store.booksCheckpoints()).map((c) => [c.node, c.logOffset]));
  // 1. Segment logs, then the files in the spool.
  const nodeIds = await listNodes(root);
  const logs = new Map<string, LoggedSegment[]>();
  for (const node of nodeIds) logs.set(node, await readSegmentLogFrom(root, node, startAt.get(node) ?? 0));
  const files = (await Promise.all(nodeIds.map((n) => listSegments(root, n)))).flat();
  const spool = new Map<string, { node: string; segment: string; requests: number; damaged: number }>();
  let done = 0;
  for (const f of files) {
    progress?.(done++, files.length);
    // Sealed since the listing (then read under its sealed name), or drained since (then the
    // database, read after this, has it).
    const buf = (await readIfPresent(f.path)) ?? (f.state === 'open' ? await readIfPresent(sealedPath(root, f.node, f.segment)) : null);
    if (!buf) continue;
    const seg = parseSegment(buf);
    if (seg.kind === 'header') {
      // An open segment's header not written yet holds no acknowledged record.
      if (f.state === 'open' && buf.length === 0) continue;
      spool.set(`${f.node}/${f.segment}`, { node: f.node, segment: f.segment, requests: 0, damaged: 1 });
      differences.push(`node ${f.node}: segment ${f.segment} in the spool has an unreadable header (${seg.problem.code}): its requests cannot be counted (intake spool inspect ${relativeTo(root, f.path)})`);
      continue;
    }
    // An open segment's torn tail was never acknowledged (recovery cuts it); anything else damaged is.
    const damaged = seg.damaged.filter((d) => !(f.state === 'open' && d.reason === 'corrupt-tail')).length;
    spool.set(`${f.node}/${f.segment}`, { node: f.node, segment: f.segment, requests: seg.requests.length, damaged });
  }
  progress?.(files.length, files.length);

  // 2. The database, then quarantine/.
  const db = await store.books();
  const reports = await readReports(root);
  const [retry, dead] = await Promise.all([readDirOrEmpty(retryDir(root)), readDirOrEmpty(deadDir(root))]);

  const nodes = new Map<string, NodeBooks>();
  const bookOf = (node: string): NodeBooks => {
    let b = nodes.get(node);
    if (!b) nodes.set(node, (b = { node, accepted: 0, stored: 0, inSpool: 0, quarantined: 0, segments: { drained: 0, folded: 0, inSpool: 0, missing: [] }, damaged: 0 }));
    return b;
  };
  const drained = new Set<string>();
  const reportsBySegment = new Map<string, ReportFile[]>();
  for (const r of reports) {
    if (r.node === null || r.segment === null) continue;
    const k = `${r.node}/${r.segment}`;
    reportsBySegment.set(k, [...(reportsBySegment.get(k) ?? []), r]);
  }
  // Folded segments count from their checkpoint (their reports were checked before the fold).
  const checkpointAt = new Map<string, number>();
  for (const c of db.checkpoints) {
    checkpointAt.set(c.node, c.logOffset);
    const b = bookOf(c.node);
    b.accepted += c.requests;
    b.stored += c.requests - c.refused - c.conflicts;
    b.quarantined += c.refused + c.conflicts;
    b.segments.drained += c.segments;
    b.segments.folded += c.segments;
  }
  for (const s of db.segments) {
    const k = `${s.node}/${s.segment}`;
    drained.add(k);
    const b = bookOf(s.node);
    const quarantined = s.refused + s.conflicts;
    b.accepted += s.requests;
    b.stored += s.requests - quarantined;
    b.quarantined += quarantined;
    b.segments.drained++;
    const held = (reportsBySegment.get(k) ?? []).filter((r) => RECORD_REASONS.has(r.reason) && (r.kind ?? 'request') === 'request').length;
    if (held !== quarantined) {
      differences.push(`node ${s.node}: the drain of segment ${s.segment} quarantined ${quarantined} request record(s), but quarantine/ holds ${held} report(s) of them (source nodes/${s.node}/${s.segment}${SEALED_EXT})`);
    }
  }
  for (const [k, s] of spool) {
    const b = bookOf(s.node);
    b.damaged += s.damaged;
    if (drained.has(k)) continue; // drained, its file not deleted yet: counted once, from the database
    b.accepted += s.requests;
    b.inSpool += s.requests;
    b.segments.inSpool++;
    if (s.damaged > 0) differences.push(`node ${s.node}: segment ${s.segment} in the spool has ${s.damaged} damaged range(s) that may hold accepted requests (intake spool verify)`);
  }
  const wholeFiles = new Set(reports.filter((r) => r.node !== null && r.file.includes('@file')).map((r) => `${r.node}/${r.segment}`));
  for (const r of reports) {
    if (RECORD_REASONS.has(r.reason) || NEVER_ACKNOWLEDGED.has(r.reason) || r.node === null) continue;
    bookOf(r.node).damaged++;
    differences.push(`node ${r.node}: damaged bytes of segment ${r.segment} are in quarantine (reason ${r.reason}, ${r.length} bytes): they may have held accepted requests (${r.file})`);
  }
  for (const [node, lines] of logs) {
    const b = bookOf(node);
    const folded = checkpointAt.get(node) ?? 0;
    const listed = new Set<string>();
    for (const { id, end } of lines) {
      // Folded since the log was read (the snapshot's checkpoint is further on), or listed twice.
      if (end <= folded || listed.has(id)) continue;
      listed.add(id);
      const k = `${node}/${id}`;
      if (drained.has(k) || spool.has(k) || wholeFiles.has(k)) continue;
      // Listed before the spool was read, so it was in the spool or drained by then unless it vanished.
      b.segments.missing.push(id);
      differences.push(`node ${node}: segment ${id} is listed in nodes/${node}/${SEGMENT_LOG} but is neither drained (drained_segments), nor in the spool, nor in quarantine: its requests are lost`);
    }
  }
  if (db.rows !== db.rowsInserted) {
    differences.push(
      db.rows < db.rowsInserted
        ? `database: requests holds ${db.rows} rows, but ${db.rowsInserted} were inserted (requests_inserted): ${db.rowsInserted - db.rows} row(s) lost`
        : `database: requests holds ${db.rows} rows, but only ${db.rowsInserted} were inserted through intake (requests_inserted): ${db.rows - db.rowsInserted} row(s) from elsewhere`,
    );
  }
  const cb = db.callbacks;
  const cc = callbackCounts({ completed: db.completed, ...cb });
  const callbacks = cc.delivered + cc.pending + cc.parked + cc.dead + cc.gone;
  if (callbacks !== db.completed) {
    differences.push(`callbacks: ${db.completed} completed request(s), but ${callbacks} callback(s) (delivered ${cc.delivered}, pending ${cc.pending}, parked ${cc.parked}, dead ${cc.dead}, gone ${cc.gone})`);
  }

  const folds = o.planFolds
    ? await planFolds({ root, logs, checkpointAt, drained: new Map(db.segments.map((x) => [`${x.node}/${x.segment}`, x.ageMs ?? 0])), foldAfterMs: o.planFolds.foldAfterMs, inSpool: new Set(spool.keys()), wholeFiles })
    : undefined;

  const list = [...nodes.values()].sort((a, b) => (a.node < b.node ? -1 : 1));
  const sum = (f: (b: NodeBooks) => number) => list.reduce((n, b) => n + f(b), 0);
  return {
    nodes: list,
    total: {
      accepted: sum((b) => b.accepted),
      stored: sum((b) => b.stored),
      inSpool: sum((b) => b.inSpool),
      quarantined: sum((b) => b.quarantined),
      damaged: sum((b) => b.damaged),
      segments: { drained: sum((b) => b.segments.drained), folded: sum((b) => b.segments.folded), inSpool: sum((b) => b.segments.inSpool), missing: sum((b) => b.segments.missing.length) },
    },
    database: { rows: db.rows, rowsInserted: db.rowsInserted },
    callbacks: { completed: db.completed, ...cb, spool: { retry: retry.filter((n) => n.endsWith(SEALED_EXT)).length, dead: dead.filter((n) => n.endsWith(SEALED_EXT)).length } },
    differences,
    ...(folds ? { folds } : {}),
  };
}

function relativeTo(root: string, path: string): string {
  return path.startsWith(root + '/') ? path.slice(root.length + 1) : basename(path);
}
