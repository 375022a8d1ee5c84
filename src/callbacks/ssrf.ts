// SSRF guard: callbacks go only to public addresses unless an operator allows a range. It is
// checked on the address actually connected to (the callback client's connector, connector.ts),
// so DNS rebinding and numeric spellings (2130706433, 0x7f.1, [::ffff:127.0.0.1]) are caught as
// well as names.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';

const FORBIDDEN_V4 = [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24],
  ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const;
const FORBIDDEN_V6 = [
  ['::', 96], ['64:ff9b::', 96], ['2002::', 16], ['64:ff9b:1::', 48], ['100::', 64], ['2001::', 23], ['2001:db8::', 32],
  ['fc00::', 7], ['fe80::', 10], ['ff00::', 8],
] as const;

/** Every address a name resolves to (dns.lookup with all: true, by default). */
export type Resolve = (hostname: string, callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => void;

const systemResolve: Resolve = (hostname, callback) => dnsLookup(hostname, { all: true }, callback);

/** A CIDR an operator allows (`10.0.0.0/8`, `::1`; no prefix: one address), or an Error saying what is wrong. */
export function parseCidr(cidr: string): { address: string; prefix: number; type: 'ipv4' | 'ipv6' } {
  const [address, bits, ...rest] = cidr.split('/');
  const family = isIP(address ?? '');
  if (!address || family === 0 || rest.length > 0) throw new Error(`bad CIDR ${JSON.stringify(cidr)}: not an IP address with an optional /prefix`);
  const max = family === 6 ? 128 : 32;
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!(prefix >= 0 && prefix <= max)) throw new Error(`bad CIDR ${JSON.stringify(cidr)}: the prefix must be 0 to ${max}`);
  return { address, prefix, type: family === 6 ? 'ipv6' : 'ipv4' };
}

export class SsrfGuard {
  private readonly forbidden = new BlockList();
  private readonly allowed = new BlockList();
  private readonly resolve: Resolve;

  /**
   * `allow`: CIDRs an operator permits even though they are not public (e.g. 127.0.0.1/32 in tests).
   * `resolve`: the system resolver; tests give names answers no DNS server would (rebinding).
   */
  constructor(allow: string[] = [], resolve: Resolve = systemResolve) {
    this.resolve = resolve;
    for (const [a, p] of FORBIDDEN_V4) this.forbidden.addSubnet(a, p, 'ipv4');
    for (const [a, p] of FORBIDDEN_V6) this.forbidden.addSubnet(a, p, 'ipv6');
    for (const cidr of allow) {
      const { address, prefix, type } = parseCidr(cidr);
      this.allowed.addSubnet(address, prefix, type);
    }
  }

  /** Why `address` may not be connected to, or null if it may. */
  refuse(address: string): string | null {
    let a = address.replace(/^\[|\]$/g, '');
    const family = isIP(a);
    if (family === 0) return `not an IP address: ${address}`;
    // An IPv4-mapped IPv6 address reaches the IPv4 host: judge that.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
    if (mapped) a = mapped[1]!;
    const type = isIP(a) === 6 ? 'ipv6' : 'ipv4';
    if (type === 'ipv6' && /^::ffff:/i.test(a)) return `IPv4-mapped address ${address}`;
    if (this.allowed.check(a, type)) return null;
    if (this.forbidden.check(a, type)) return `${address} is not a public address`;
    return null;
  }

  /** A drop-in for dns.lookup that fails for forbidden addresses (net.connect calls it for the callback connector). */
  readonly lookup = (hostname: string, options: unknown, callback: (err: Error | null, address: string | LookupAddress[], family?: number) => void): void => {
    this.resolve(hostname, (err, list) => {
      if (err) return callback(err, '', 0);
      if (list.length === 0) return callback(Object.assign(new Error(`${hostname} resolves to no address`), { code: 'ENOTFOUND' }), '', 0);
      for (const a of list) {
        const why = this.refuse(a.address);
        if (why) return callback(Object.assign(new Error(`callback refused: ${hostname} resolves to ${why}`), { code: 'INTAKE_SSRF_BLOCKED' }), '', 0);
      }
      const all = typeof options === 'object' && options !== null && (options as { all?: boolean }).all;
      if (all) return callback(null, list);
      const first = list[0]!;
      callback(null, first.address, first.family);
    });
  };
}
