/**
 * Compile-time proof that two descriptions of one contract accept the same
 * values: a TypeBox schema (which validates RPC params and describes them)
 * and the plain interface the guest uses (it cannot bundle TypeBox). Write
 * `type C = Expect<Same<A, B>>`; if they drift apart, the build fails.
 */
export type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export type Expect<T extends true> = T;
