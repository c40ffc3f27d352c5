/**
 * Request bodies read the way cloud-hypervisor reads them: serde_json into its
 * Rust types. A body is parsed into values that remember where they are, then
 * checked against a type (serde-types.ts), so the errors carry serde's text
 * and its `at line L column C` (the column of the last character read when the
 * error was found). What comes back is the value as CH re-serialises it: every
 * default filled in, unknown fields dropped, `None` left out or written `null`
 * as each Rust struct says.
 *
 * Unlike serde_json, which reads and checks in one pass, a syntax error
 * anywhere in the body is found before a type error earlier in it.
 */

/** A parsed JSON value with the positions serde's errors refer to. */
type Node =
  | { kind: "string"; value: string; start: number; end: number }
  | { kind: "number"; text: string; start: number; end: number }
  | { kind: "bool"; value: boolean; start: number; end: number }
  | { kind: "null"; start: number; end: number }
  /** Each entry: its key, its value, and the offset of the key's closing quote. */
  | { kind: "map"; entries: [string, Node, number][]; start: number; end: number }
  | { kind: "seq"; items: Node[]; start: number; end: number };

export class SerdeError extends Error {}

// biome-ignore lint/suspicious/noControlCharactersInRegex: a JSON string may not hold a raw control character.
const STRING = /"(?:[^"\\\u0000-\u001f]|\\.)*"/y;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** Offsets are of the last character read; serde counts columns from 1 and a fresh line from column 0. */
class Reader {
  pos = 0;
  constructor(readonly text: string) {}

  at(offset: number): string {
    const before = this.text.slice(0, offset + 1);
    const line = before.split("\n").length;
    const column = offset + 1 - (before.lastIndexOf("\n") + 1);
    return `at line ${line} column ${column}`;
  }

  fail(message: string, offset = this.pos - 1): never {
    throw new SerdeError(`${message} ${this.at(offset)}`);
  }

  /** The body ended inside `what`: placed at its last character. */
  eof(what: string): never {
    return this.fail(`EOF while parsing ${what}`, this.text.length - 1);
  }

  skipWhitespace(): void {
    while (this.pos < this.text.length && " \t\n\r".includes(this.text[this.pos] as string)) this.pos++;
  }

  value(): Node {
    this.skipWhitespace();
    const start = this.pos;
    const c = this.text[this.pos];
    if (c === undefined) this.eof("a value");
    if (c === "{") return this.map(start);
    if (c === "[") return this.seq(start);
    if (c === '"') return { kind: "string", value: this.string(), start, end: this.pos - 1 };
    if (c === "-" || (c >= "0" && c <= "9")) return this.number(start);
    for (const [word, node] of [
      ["true", { kind: "bool", value: true }],
      ["false", { kind: "bool", value: false }],
      ["null", { kind: "null" }],
    ] as const) {
      if (c !== word[0]) continue;
      this.pos++;
      for (const expected of word.slice(1)) {
        if (this.pos >= this.text.length) this.eof("a value");
        if (this.text[this.pos++] !== expected) this.fail("expected ident");
      }
      return { ...node, start, end: this.pos - 1 } as Node;
    }
    this.pos++;
    return this.fail("expected value");
  }

  private string(): string {
    STRING.lastIndex = this.pos;
    const m = STRING.exec(this.text);
    if (!m) {
      this.eof("a string");
    }
    this.pos += m[0].length;
    return JSON.parse(m[0]);
  }

  private number(start: number): Node {
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.text);
    if (!m) {
      this.pos++;
      this.fail("invalid number");
    }
    this.pos += m[0].length;
    return { kind: "number", text: m[0], start, end: this.pos - 1 };
  }

  private map(start: number): Node {
    this.pos++;
    const entries: [string, Node, number][] = [];
    this.skipWhitespace();
    if (this.text[this.pos] === "}") return { kind: "map", entries, start, end: this.pos++ };
    for (;;) {
      this.skipWhitespace();
      if (this.pos >= this.text.length) this.eof("an object");
      if (this.text[this.pos] !== '"') {
        this.pos++;
        this.fail("key must be a string");
      }
      const key = this.string();
      const keyEnd = this.pos - 1;
      this.skipWhitespace();
      if (this.pos >= this.text.length) this.eof("an object");
      if (this.text[this.pos++] !== ":") this.fail("expected `:`");
      entries.push([key, this.value(), keyEnd]);
      this.skipWhitespace();
      const next = this.text[this.pos++];
      if (next === "}") return { kind: "map", entries, start, end: this.pos - 1 };
      if (next === undefined) this.eof("an object");
      if (next !== ",") this.fail("expected `,` or `}`");
    }
  }

  private seq(start: number): Node {
    this.pos++;
    const items: Node[] = [];
    this.skipWhitespace();
    if (this.text[this.pos] === "]") return { kind: "seq", items, start, end: this.pos++ };
    for (;;) {
      items.push(this.value());
      this.skipWhitespace();
      const next = this.text[this.pos++];
      if (next === "]") return { kind: "seq", items, start, end: this.pos - 1 };
      if (next === undefined) this.eof("a list");
      if (next !== ",") this.fail("expected `,` or `]`");
    }
  }
}

/** The Rust types a body is read into. */
export type RustType =
  | { k: "uint"; name: "u8" | "u16" | "u32" | "u64" | "usize" }
  | { k: "bool" }
  | { k: "string"; path?: boolean }
  | { k: "enum"; name: string; variants: string[] }
  | { k: "option"; of: RustType }
  | { k: "seq"; of: RustType }
  | { k: "struct"; name: string; fields: Field[]; skipNone?: boolean; denyUnknown?: boolean }
  /** A part of VmConfig the test VMM does not model: kept as sent. */
  | { k: "any" };

export interface Field {
  name: string;
  type: RustType;
  /** `#[serde(default)]`: the value when the field is absent (an Option's is None without one). */
  default?: () => unknown;
  /** Serialised only when true (`skip_serializing_if = Not::not`). */
  skipIfFalse?: boolean;
  /** A field of a struct flattened into this one (`#[serde(flatten)]`). */
  flattened?: boolean;
}

const MAX: Record<string, bigint> = { u8: 255n, u16: 65535n, u32: 4294967295n, u64: 18446744073709551615n, usize: 18446744073709551615n };

/** serde's `Unexpected`, as its errors print it. */
function unexpected(node: Node): string {
  switch (node.kind) {
    case "string":
      return `string ${JSON.stringify(node.value)}`;
    case "number":
      return /[.eE]/.test(node.text) ? `floating point \`${Number(node.text)}\`` : `integer \`${node.text}\``;
    case "bool":
      return `boolean \`${node.value}\``;
    case "null":
      return "null";
    case "map":
      return "map";
    case "seq":
      return "sequence";
  }
}

function expecting(t: RustType): string {
  switch (t.k) {
    case "uint":
      return t.name;
    case "bool":
      return "a boolean";
    case "string":
      return t.path ? "path string" : "a string";
    case "enum":
      return `enum ${t.name}`;
    case "option":
      return `option`;
    case "seq":
      return "a sequence";
    case "struct":
      return `struct ${t.name}`;
    case "any":
      return "any value";
  }
}

function oneOf(variants: string[]): string {
  const named = variants.map((v) => `\`${v}\``);
  if (named.length === 1) return `expected ${named[0]}`;
  if (named.length === 2) return `expected ${named[0]} or ${named[1]}`;
  return `expected one of ${named.join(", ")}`;
}

class Checker {
  constructor(private readonly reader: Reader) {}

  /** Where serde stands when it finds `node` of the wrong type: past a scalar, before a map or sequence. */
  private wrongType(node: Node, t: RustType, at?: number): never {
    const offset = at ?? (node.kind === "map" || node.kind === "seq" ? node.start - 1 : node.end);
    return this.reader.fail(`invalid type: ${unexpected(node)}, expected ${expecting(t)}`, offset);
  }

  /** `at`: inside a flattened struct serde has read the whole map first, so every error is placed at its end. */
  read(node: Node, t: RustType, at?: number): unknown {
    switch (t.k) {
      case "any":
        return plain(node);
      case "option":
        return node.kind === "null" ? null : this.read(node, t.of, at);
      case "bool":
        if (node.kind !== "bool") this.wrongType(node, t, at);
        return node.value;
      case "string":
        if (node.kind !== "string") this.wrongType(node, t, at);
        return node.value;
      case "uint": {
        if (node.kind !== "number" || /[.eE]/.test(node.text)) this.wrongType(node, t, at);
        const n = BigInt(node.text);
        if (n < 0n || n > (MAX[t.name] as bigint)) this.reader.fail(`invalid value: integer \`${node.text}\`, expected ${t.name}`, at ?? node.end);
        return Number(n);
      }
      case "enum":
        if (node.kind !== "string") this.wrongType(node, t, at);
        if (!t.variants.includes(node.value)) this.reader.fail(`unknown variant \`${node.value}\`, ${oneOf(t.variants)}`, at ?? node.end);
        return node.value;
      case "seq":
        if (node.kind !== "seq") this.wrongType(node, t, at);
        return node.items.map((item) => this.read(item, t.of, at));
      case "struct":
        return this.struct(node, t, at);
    }
  }

  /**
   * A struct as serde's derive reads it: its own fields as they come, in the body's order (an unknown or repeated key
   * fails at its end); the fields of a flattened struct from what was left over once the map is read, so their errors
   * are placed at its `}`, as are missing fields. `outer`: the whole struct is inside a flattened one.
   */
  private struct(node: Node, t: Extract<RustType, { k: "struct" }>, outer?: number): Record<string, unknown> {
    const hasFlattened = t.fields.some((f) => f.flattened);
    if (node.kind === "seq" && !hasFlattened) {
      // In a sequence only `#[serde(default)]` fields may be missing (an Option without it may not).
      const required = t.fields.findIndex((f) => f.default === undefined);
      if (node.items.length <= required || required < 0) {
        this.reader.fail(`invalid length ${required}, expected struct ${t.name} with ${t.fields.length} elements`, node.end);
      }
    }
    if (node.kind !== "map") return this.wrongType(node, t, outer);
    const read = new Map<string, unknown>();
    const leftOver = new Map<string, Node>();
    for (const [key, value, keyEnd] of node.entries) {
      const field = t.fields.find((f) => f.name === key);
      if (field?.flattened || (!field && hasFlattened)) leftOver.set(key, value);
      else if (!field) {
        if (t.denyUnknown) this.reader.fail(`unknown field \`${key}\`, ${oneOf(t.fields.map((f) => f.name))}`, outer ?? keyEnd);
      } else {
        if (read.has(key)) this.reader.fail(`duplicate field \`${key}\``, outer ?? keyEnd);
        read.set(key, this.read(value, field.type, outer));
      }
    }
    const end = outer ?? node.end;
    const out: Record<string, unknown> = {};
    for (const field of t.fields) {
      const flattened = field.flattened ? leftOver.get(field.name) : undefined;
      let v: unknown;
      if (read.has(field.name)) v = read.get(field.name);
      else if (flattened !== undefined) v = this.read(flattened, field.type, end);
      else if (field.default) v = field.default();
      else if (field.type.k === "option") v = null;
      else this.reader.fail(`missing field \`${field.name}\``, end);
      if ((v === null && t.skipNone) || (field.skipIfFalse && v === false)) continue;
      out[field.name] = v;
    }
    return out;
  }
}

function plain(node: Node): unknown {
  switch (node.kind) {
    case "map":
      return Object.fromEntries(node.entries.map(([k, v]) => [k, plain(v)]));
    case "seq":
      return node.items.map(plain);
    case "number":
      return Number(node.text);
    case "null":
      return null;
    default:
      return node.value;
  }
}

/** Reads `text` as serde_json reads it into `t`: the value CH would hold, or a SerdeError with its message. */
export function deserialize(text: string, t: RustType): unknown {
  const reader = new Reader(text);
  const node = reader.value();
  reader.skipWhitespace();
  if (reader.pos < text.length) reader.fail("trailing characters", reader.pos);
  return new Checker(reader).read(node, t);
}
