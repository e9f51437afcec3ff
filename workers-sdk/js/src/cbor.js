// CBOR (RFC 8949) for step inputs and outputs, bundled into every
// JavaScript worker. Encodes null/undefined, booleans, numbers (safe
// integers as integers, the rest as 64-bit floats), bigints (64-bit),
// strings, Uint8Array, arrays and plain objects (as maps with text keys);
// decodes the same, plus half and single floats, indefinite lengths and
// tags (their content). Bad bytes throw a CborError naming what and where.

export const MAX_DEPTH = 256;

export class CborError extends Error {}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function encode(value) {
  const out = [];
  put(value, out, 0);
  return Uint8Array.from(out);
}

function head(major, n, out) {
  const m = major << 5;
  if (typeof n === 'bigint') {
    if (n < 0n || n >= 1n << 64n) throw new CborError(`integer ${n} does not fit in 64 bits`);
    if (n < 1n << 32n) return head(major, Number(n), out);
    out.push(m | 27);
    for (let s = 56n; s >= 0n; s -= 8n) out.push(Number((n >> s) & 0xffn));
    return;
  }
  if (n < 24) out.push(m | n);
  else if (n < 0x100) out.push(m | 24, n);
  else if (n < 0x10000) out.push(m | 25, n >> 8, n & 0xff);
  else if (n < 0x100000000) out.push(m | 26, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  else head(major, BigInt(n), out);
}

function put(v, out, depth) {
  if (depth > MAX_DEPTH) throw new CborError(`nested deeper than ${MAX_DEPTH} levels`);
  if (v === null || v === undefined) out.push(0xf6);
  else if (v === true) out.push(0xf5);
  else if (v === false) out.push(0xf4);
  else if (typeof v === 'bigint') v >= 0n ? head(0, v, out) : head(1, -v - 1n, out);
  else if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) v >= 0 ? head(0, v, out) : head(1, -v - 1, out);
    else {
      const b = new DataView(new ArrayBuffer(8));
      b.setFloat64(0, v);
      out.push(0xfb, ...new Uint8Array(b.buffer));
    }
  } else if (typeof v === 'string') {
    const raw = utf8.encode(v);
    head(3, raw.length, out);
    for (const x of raw) out.push(x);
  } else if (v instanceof Uint8Array) {
    head(2, v.length, out);
    for (const x of v) out.push(x);
  } else if (Array.isArray(v)) {
    head(4, v.length, out);
    for (const x of v) put(x, out, depth + 1);
  } else if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined);
    head(5, keys.length, out);
    for (const k of keys) {
      put(k, out, depth + 1);
      put(v[k], out, depth + 1);
    }
  } else {
    throw new CborError(`cannot encode a ${v?.constructor?.name ?? typeof v} as CBOR`);
  }
}

/** `b` as a Uint8Array: a typed array or DataView, an ArrayBuffer, or an array of bytes. */
export function asBytes(b) {
  if (b instanceof Uint8Array) return b;
  if (b instanceof ArrayBuffer) return new Uint8Array(b);
  if (ArrayBuffer.isView(b)) return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  if (Array.isArray(b) && b.every((x) => Number.isInteger(x) && x >= 0 && x < 256)) return Uint8Array.from(b);
  throw new CborError(`expected bytes, got ${b?.constructor?.name ?? typeof b}`);
}

export function decode(input) {
  const bytes = asBytes(input);
  const r = { b: bytes, pos: 0, view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
  const v = item(r, 0);
  if (r.pos !== bytes.length) throw new CborError(`${bytes.length - r.pos} bytes after the first CBOR item`);
  return v;
}

function need(r, n) {
  if (r.pos + n > r.b.length) {
    throw new CborError(`truncated: ${n} bytes wanted at offset ${r.pos}, ${r.b.length - r.pos} left`);
  }
}

function arg(r, info) {
  if (info < 24) return info;
  const size = { 24: 1, 25: 2, 26: 4, 27: 8 }[info];
  if (!size) throw new CborError(`reserved additional information ${info} at offset ${r.pos - 1}`);
  need(r, size);
  let n;
  if (size === 1) n = r.view.getUint8(r.pos);
  else if (size === 2) n = r.view.getUint16(r.pos);
  else if (size === 4) n = r.view.getUint32(r.pos);
  else {
    const big = r.view.getBigUint64(r.pos);
    n = big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
  }
  r.pos += size;
  return n;
}

function item(r, depth) {
  if (depth > MAX_DEPTH) throw new CborError(`nested deeper than ${MAX_DEPTH} levels`);
  need(r, 1);
  const start = r.pos;
  const initial = r.b[r.pos++];
  const major = initial >> 5;
  const info = initial & 0x1f;
  if (major === 7) return simple(r, info, start);
  if (info === 31) return indefinite(r, major, depth, start);
  const n = arg(r, info);
  const count = () => {
    if (typeof n === 'bigint') throw new CborError(`length ${n} at offset ${start} is too large`);
    return n;
  };
  switch (major) {
    case 0: return n;
    case 1: {
      const neg = typeof n === 'bigint' ? -1n - n : -1 - n;
      return typeof neg === 'number' && !Number.isSafeInteger(neg) ? -1n - BigInt(n) : neg;
    }
    case 2: { const len = count(); need(r, len); const v = r.b.slice(r.pos, r.pos + len); r.pos += len; return v; }
    case 3: { const len = count(); need(r, len); const raw = r.b.subarray(r.pos, r.pos + len); r.pos += len; return text(raw, start); }
    case 4: { const out = []; for (let i = 0; i < count(); i++) out.push(item(r, depth + 1)); return out; }
    case 5: { const out = {}; for (let i = 0; i < count(); i++) { const k = item(r, depth + 1); setKey(out, key(k, start), item(r, depth + 1)); } return out; }
    default: return item(r, depth + 1); // a tag: its content stands for it
  }
}

function text(raw, start) {
  try {
    return utf8Strict.decode(raw);
  } catch {
    throw new CborError(`text at offset ${start} is not UTF-8`);
  }
}

// An own property, whatever its name: `out['__proto__'] = v` would set the
// object's prototype instead.
function setKey(out, k, v) {
  Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
}

function key(k, start) {
  if (typeof k === 'object' && k !== null) throw new CborError(`a map key at offset ${start} is not a string or number`);
  return String(k);
}

function simple(r, info, start) {
  if (info === 20) return false;
  if (info === 21) return true;
  if (info === 22 || info === 23) return null;
  if (info === 25) { need(r, 2); const v = half(r.view.getUint16(r.pos)); r.pos += 2; return v; }
  if (info === 26) { need(r, 4); const v = r.view.getFloat32(r.pos); r.pos += 4; return v; }
  if (info === 27) { need(r, 8); const v = r.view.getFloat64(r.pos); r.pos += 8; return v; }
  if (info === 31) throw new CborError(`unexpected break at offset ${start}`);
  throw new CborError(`unsupported simple value ${info} at offset ${start}`);
}

function isBreak(r) {
  need(r, 1);
  if (r.b[r.pos] === 0xff) { r.pos++; return true; }
  return false;
}

function indefinite(r, major, depth, start) {
  if (major === 2 || major === 3) {
    const parts = [];
    while (!isBreak(r)) {
      const part = item(r, depth + 1);
      if (major === 2 ? !(part instanceof Uint8Array) : typeof part !== 'string') {
        throw new CborError(`indefinite string at offset ${start} has a chunk of another type`);
      }
      parts.push(part);
    }
    if (major === 3) return parts.join('');
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }
  if (major === 4) { const out = []; while (!isBreak(r)) out.push(item(r, depth + 1)); return out; }
  if (major === 5) { const out = {}; while (!isBreak(r)) { const k = item(r, depth + 1); setKey(out, key(k, start), item(r, depth + 1)); } return out; }
  throw new CborError(`indefinite length for major type ${major} at offset ${start}`);
}

function half(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
