// Whether two JSON texts hold the same value, compared as PostgreSQL's jsonb equality does:
// object keys as a set (their order does not matter), arrays in order, numbers by value,
// strings exactly. A repeated complete on SQLite uses it to tell the same result, written
// again by a worker that lost the first answer, from a different one (PostgreSQL compares
// jsonb itself), so both engines answer the same. The texts come from JSON.stringify of
// bodies the JSON body parser accepted: no key twice, every number exactly a double.

export function sameJsonText(a: string, b: string): boolean {
  return a === b || sameValue(JSON.parse(a), JSON.parse(b));
}

function sameValue(a: unknown, b: unknown): boolean {
  // The depth is bounded by --max-json-depth (the parser refused deeper bodies), so recursion is safe here.
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bs = b as unknown[];
    return a.length === bs.length && a.every((x, i) => sameValue(x, bs[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const keys = Object.keys(ao);
  return keys.length === Object.keys(bo).length && keys.every((k) => Object.hasOwn(bo, k) && sameValue(ao[k], bo[k]));
}
