// An exact reading of JSON text for tests that compare what a client sent with what intake gives
// back: JSON.parse would round numbers to doubles and keep the last of two equal keys, hiding
// exactly the losses such a test looks for. Numbers become normalised decimals (digits and a
// power of ten, compared as written, so 1.0 = 1 = 1e0 but 0.1000000000000000000001 ≠ 0.1),
// objects become maps (a key twice is an error), strings are decoded exactly.
// A test oracle, independent of src/http/json-body.ts on purpose: it parses by recursive
// descent (test inputs nest a few dozen levels at most) and keeps exponents as BigInt.

export type Exact = null | boolean | string | { num: string } | Exact[] | Map<string, Exact>;

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const WS = /[ \t\n\r]*/y;

/** The canonical spelling of a decimal token: "0", or "[-]<digits>e<exponent>" with no leading or trailing zeros. */
export function decimal(token: string): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(token);
  if (!m) throw new Error(`not a JSON number: ${token}`);
  const [, sign, int, frac = '', exp = '0'] = m;
  let digits = int! + frac;
  let e = BigInt(exp) - BigInt(frac.length);
  const lead = digits.length - digits.replace(/^0+/, '').length;
  digits = digits.slice(lead);
  if (digits === '') return '0';
  const trimmed = digits.replace(/0+$/, '');
  e += BigInt(digits.length - trimmed.length);
  return `${sign}${trimmed}e${e}`;
}

export function parseExact(text: string): Exact {
  let i = 0;
  const ws = () => {
    WS.lastIndex = i;
    WS.exec(text);
    i = WS.lastIndex;
  };
  const fail = (what: string): never => {
    throw new Error(`exact-json: ${what} at ${i}: ${JSON.stringify(text.slice(i, i + 30))}`);
  };
  const str = (): string => {
    // Find the closing quote (skipping escapes), then let JSON.parse decode the escapes: for
    // strings it is exact, lone surrogates included.
    let j = i + 1;
    while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
    if (j >= text.length) fail('unterminated string');
    const s = JSON.parse(text.slice(i, j + 1)) as string;
    i = j + 1;
    return s;
  };
  const value = (): Exact => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const m = new Map<string, Exact>();
      ws();
      if (text[i] === '}') {
        i++;
        return m;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const k = str();
        if (m.has(k)) fail(`the key ${JSON.stringify(k)} twice`);
        ws();
        if (text[i++] !== ':') fail('expected :');
        m.set(k, value());
        ws();
        const d = text[i++];
        if (d === '}') return m;
        if (d !== ',') fail('expected , or }');
      }
    }
    if (c === '[') {
      i++;
      const a: Exact[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return a;
      }
      for (;;) {
        a.push(value());
        ws();
        const d = text[i++];
        if (d === ']') return a;
        if (d !== ',') fail('expected , or ]');
      }
    }
    if (c === '"') return str();
    for (const [word, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    NUMBER.lastIndex = i;
    const n = NUMBER.exec(text);
    if (!n) return fail('expected a value');
    i = NUMBER.lastIndex;
    return { num: decimal(n[0]) };
  };
  const v = value();
  ws();
  if (i !== text.length) fail('text after the value');
  return v;
}

/** One text per value: object keys sorted, numbers as decimal(), strings as JSON.stringify writes them. Equal values, equal texts. */
export function canonical(v: Exact): string {
  if (v === null || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v instanceof Map) {
    const keys = [...v.keys()].sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(v.get(k)!)}`).join(',')}}`;
  }
  return v.num;
}

/** The member `key` of an object read by parseExact (a test asserts that it is there). */
export function member(v: Exact, key: string): Exact | undefined {
  return v instanceof Map ? v.get(key) : undefined;
}
