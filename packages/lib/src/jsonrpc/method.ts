/** A JSON-RPC method: its contract (schemas, the errors it may answer with) and its handler. */
import type { Static, TSchema } from "@sinclair/typebox";
import type { ErrorDef } from "./rpc-error.js";

/** What a method takes, answers and may fail with: enough to describe it (OpenRPC) and to validate calls. */
export interface MethodContract<P extends TSchema = TSchema, R extends TSchema = TSchema> {
  summary: string;
  params: P;
  result: R;
  errors: ErrorDef[];
  /**
   * A call that changes something is logged once, answered or refused, as an audit line with what this picks of
   * its params: enough to say what was done to what, nothing secret (an exec's argv, never its env or stdin).
   */
  audit?: (params: Static<P>) => Record<string, unknown>;
}

/** The code that answers calls to a method of contract C. */
export type Handler<C> = C extends MethodContract<infer P, infer R> ? (params: Static<P>) => Promise<Static<R>> | Static<R> : never;

export interface MethodDef<P extends TSchema = TSchema, R extends TSchema = TSchema> extends MethodContract<P, R> {
  name: string;
  handler: (params: Static<P>) => Promise<Static<R>> | Static<R>;
}

/** A contract, checked against its own schemas (its audit picks from its params). */
export const contract = <P extends TSchema, R extends TSchema>(c: MethodContract<P, R>) => c;

/** Checks a definition against its own schemas, then erases them for a table of methods. */
export const method = <P extends TSchema, R extends TSchema>(def: MethodDef<P, R>) => def as unknown as MethodDef;

/**
 * A table of contracts bound to the code that answers each: every method of the table has its handler, typed by its
 * contract. The one place a table's types are erased for the adapter.
 */
export function bindMethods<T extends Record<string, object>>(contracts: T, handlers: { [M in keyof T]: Handler<T[M]> }): MethodDef[] {
  return Object.keys(contracts).map((name) => ({ name, ...contracts[name], handler: handlers[name] }) as unknown as MethodDef);
}
