/** Group ids by name, from /etc/group (Node has no getgrnam). */
import fs from "node:fs";

/** The gids of the named groups that exist; a group this host lacks is left out. */
export function groupIds(names: string[]): number[] {
  let text = "";
  try {
    text = fs.readFileSync("/etc/group", "utf8");
  } catch {
    return [];
  }
  const byName = new Map(
    text
      .split("\n")
      .map((line) => line.split(":"))
      .filter((f) => f.length >= 3 && /^\d+$/.test(f[2] ?? ""))
      .map((f) => [f[0] as string, Number(f[2])] as const),
  );
  return names.flatMap((n) => (byName.has(n) ? [byName.get(n) as number] : []));
}
