/** Byte helpers on plain Uint8Array, for code the guest init (QuickJS, no Buffer) shares with the host. */

/** `a` then `b`, in a new array. */
export function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const both = new Uint8Array(a.length + b.length);
  both.set(a);
  both.set(b, a.length);
  return both;
}
