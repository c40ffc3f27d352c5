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
}

/** Checks a definition against its own schemas, then erases them for a table of methods. */
export const method = <P extends TSchema, R extends TSchema>(def: MethodDef<P, R>) => def as unknown as MethodDef;
