// FNV-1a over the parts (each followed by 0xff): the Rust `orders::stable_id`.
export function stableId(prefix, ...parts) {
  let h = 0xcbf29ce484222325n;
  for (const part of parts) {
    for (const b of [...new TextEncoder().encode(part), 0xff]) {
      h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
    }
  }
  return prefix + h.toString(16).padStart(16, '0');
}
