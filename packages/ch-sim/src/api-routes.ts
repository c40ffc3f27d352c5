/**
 * CH v53.0's HTTP endpoint before any VM logic: which routes exist, with which method, and whether they take a body;
 * and the shapes of its answers (a JSON string array as the error chain, 204 with no body).
 */
import type { HttpRequest, HttpResponse } from "./micro-http.js";

const GET_ROUTES = new Set(["vmm.ping", "vm.info", "vm.counters"]);
/** PUT routes that take a JSON body. */
const BODY_ROUTES = new Set(["vm.create", "vm.snapshot", "vm.restore"]);
const ACTIONS = new Set(["vmm.shutdown", "vm.boot", "vm.shutdown", "vm.reboot", "vm.pause", "vm.resume", "vm.power-button", "vm.delete", "vm.nmi"]);
/** Real routes this test VMM does not implement: it says so rather than pretend. */
const UNIMPLEMENTED = new Set([
  "vm.resize",
  "vm.resize-disk",
  "vm.resize-zone",
  "vm.add-device",
  "vm.remove-device",
  "vm.add-disk",
  "vm.add-fs",
  "vm.add-generic-vhost-user",
  "vm.add-pmem",
  "vm.add-net",
  "vm.add-vsock",
  "vm.add-vdpa",
  "vm.add-user-device",
  "vm.coredump",
  "vm.receive-migration",
  "vm.send-migration",
]);

export const err = (status: number, ...chain: string[]): HttpResponse => ({ status, body: chain });
export const apiErr = (status: number, ...chain: string[]): HttpResponse => err(status, "Error from API", ...chain);
export const NO_CONTENT: HttpResponse = { status: 204 };

/** The route a request names, or CH's refusal of it: an unknown path, a method the route does not take, a body on an action. */
export function routeOf(req: HttpRequest): { route: string } | { refused: HttpResponse } {
  const route = req.path.startsWith("/api/v1/") ? req.path.slice("/api/v1/".length) : undefined;
  const known = route !== undefined && (GET_ROUTES.has(route) || ACTIONS.has(route) || BODY_ROUTES.has(route) || UNIMPLEMENTED.has(route));
  if (!known) return { refused: err(404, "Not Found") };
  if (req.method !== "GET" && req.method !== "PUT") return { refused: err(400, "Bad Request") };
  if ((req.method === "GET") !== GET_ROUTES.has(route)) return { refused: err(400, "Bad Request") };
  if (ACTIONS.has(route) && req.body !== undefined) return { refused: err(400, "Bad Request") };
  return { route };
}
