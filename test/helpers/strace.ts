// Storage faults in a real running process, by strace's fault injection: attach to every thread
// of the process (`-f -p`: Node does its file work on libuv's threadpool threads), make the
// chosen system calls fail with an errno, detach to end the fault. The tracee runs on untouched
// before the attach and after the detach. Everything traced goes to a log the caller reads.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface FaultOptions {
  pid: number;
  /** System calls that fail while attached (names as strace spells them; a leading `?` allows a name this architecture lacks). */
  fail: string[];
  errno: string;
  /** strace's `when=` expression (`3+3`: the third matching call and every third after it); every call when absent. */
  when?: string;
  /** Further system calls to log (not failed). */
  trace?: string[];
  /** Where strace writes what it traced. */
  logPath: string;
}

export interface Fault {
  /** Detach: the fault ends when this resolves. */
  stop(): Promise<void>;
  /** Traced calls so far that strace made fail. */
  injected(): number;
}

/** Fails loudly when strace is not installed (Debian package `strace`; `.ci/run` installs it). */
export function requireStrace(): void {
  const r = spawnSync('strace', ['-V'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`strace is needed for the storage fault tests (Debian package strace): ${r.error?.message ?? r.stderr}`);
}

/** Attach to `pid` with the fault switched on; resolves once every thread is attached. */
export async function injectFault(o: FaultOptions): Promise<Fault> {
  const calls = [...new Set([...o.fail, ...(o.trace ?? [])])];
  const args = ['-f', '-p', String(o.pid), '-s', '4194304', '-o', o.logPath, '-e', `trace=${calls.join(',')}`, '-e', `inject=${o.fail.join(',')}:error=${o.errno}${o.when ? `:when=${o.when}` : ''}`];
  const proc = spawn('strace', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.setEncoding('utf8');
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    proc.on('error', (e) => reject(new Error(`cannot run strace (Debian package strace): ${e.message}`)));
    proc.stderr.on('data', (d: string) => {
      err += d;
      // "Process N attached with M threads" (or "Process N attached") comes once all are attached.
      if (/Process \d+ attached/.test(err)) resolve();
    });
    void exited.then((code) => reject(new Error(`strace exited with ${code} before attaching:\n${err}`)));
  });
  return {
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGINT');
      await exited;
    },
    injected: () => countInjected(o.logPath),
  };
}

function countInjected(logPath: string): number {
  try {
    return readFileSync(logPath, 'utf8').split('(INJECTED)').length - 1;
  } catch {
    return 0;
  }
}

/** One traced call, its start and end lines joined when another thread's call came between. */
export interface TracedCall {
  name: string;
  /** The first argument, when it is a number (a file descriptor). */
  fd: number | null;
  /** The call's text: name, arguments, result. */
  text: string;
  result: number;
  injected: boolean;
}

/** The calls of an strace `-f -o` log, in the order they finished. */
export function parseStraceLog(log: string): TracedCall[] {
  const open = new Map<string, string>();
  const out: TracedCall[] = [];
  for (const line of log.split('\n')) {
    const m = /^(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const [, tid, rest] = m as unknown as [string, string, string];
    let text: string;
    if (rest.endsWith('<unfinished ...>')) {
      open.set(tid, rest.slice(0, -'<unfinished ...>'.length));
      continue;
    }
    const resumed = /^<\.\.\. \w+ resumed>(.*)$/.exec(rest);
    if (resumed) {
      text = (open.get(tid) ?? '') + resumed[1];
      open.delete(tid);
    } else {
      text = rest;
    }
    const call = /^(\w+)\((\d+)?/.exec(text);
    const res = /\)\s+= (-?\d+)(?: \w+ \([^)]*\))?(?: \(INJECTED\))?$/.exec(text);
    if (!call || !res) continue; // signals, exits, detaches
    out.push({ name: call[1]!, fd: call[2] === undefined ? null : Number(call[2]), text, result: Number(res[1]), injected: text.endsWith('(INJECTED)') });
  }
  return out;
}
