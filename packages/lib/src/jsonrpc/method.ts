/** A JSON-RPC method: name, schemas, the errors it may answer with, and its handler, in one place. */
import type { Static, TSchema } from "@sinclair/typebox";
import type { ErrorDef } from "./rpc-error.js";

export interface MethodDef<P extends TSchema = TSchema, R extends TSchema = TSchema> {
  name: string;
  summary: string;
  params: P;
  result: R;
  errors: ErrorDef[];
  handler: (params: Static<P>) => Promise<Static<R>> | Static<R>;
  /**
   * A call that changes something is logged once, answered or refused, as an audit line with what this picks of
   * its params: enough to say what was done to what, nothing secret (an exec's argv, never its env or stdin).
   */
  audit?: (params: Static<P>) => Record<string, unknown>;
}

/** Checks a definition against its own schemas, then erases them for a table of methods. */
export const method = <P extends TSchema, R extends TSchema>(def: MethodDef<P, R>) => def as unknown as MethodDef;
