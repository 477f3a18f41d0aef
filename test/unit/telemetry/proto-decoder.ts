// A test-side protobuf decoder whose schema comes from the opentelemetry-proto .proto files themselves
// (test/fixtures/opentelemetry-proto/), not from a table written next to the encoder: a wrong field number, wire
// type or nesting in sidecar/telemetry/otlp-proto.ts makes decoding fail or land in another field. It decodes to
// OTLP's JSON mapping (lowerCamelCase names, trace and span ids as hex, 64-bit integers as decimal strings, enums
// as numbers), so a decoded protobuf body can be compared with the JSON body of the same data. Strict: an unknown
// field number, a wire type that does not fit the declared type, or a repeated non-repeated field is an error.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

interface FieldDef {
  name: string;
  type: string;
  repeated: boolean;
  oneof?: string;
}
interface MessageDef {
  name: string;
  fields: Map<number, FieldDef>;
}
export interface Schema {
  messages: Map<string, MessageDef>;
  enums: Set<string>;
}

const SCALARS = new Set(['double', 'float', 'int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'fixed32', 'fixed64', 'sfixed32', 'sfixed64', 'bool', 'string', 'bytes']);

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.proto') ? [p] : [];
  });
}

/** Reads every .proto under `dir`: messages (nested ones too) and enums, by their short names (which must be unique). */
export function loadSchema(dir: string): Schema {
  const schema: Schema = { messages: new Map(), enums: new Set() };
  for (const f of files(dir)) parseProto(readFileSync(f, 'utf8'), schema);
  return schema;
}

export function parseProto(text: string, schema: Schema): void {
  const src = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/[^\n]*/g, '');
  const tokens = src.match(/"[^"]*"|0x[0-9a-fA-F]+|-?\d+|[A-Za-z_][\w.]*|[{};=[\](),<>]/g) ?? [];
  let i = 0;
  const next = (): string => {
    const t = tokens[i++];
    if (t === undefined) throw new Error('unexpected end of .proto');
    return t;
  };
  const skipStatement = (): void => {
    while (next() !== ';');
  };
  const skipBlock = (): void => {
    let depth = 0;
    for (;;) {
      const t = next();
      if (t === '{') depth++;
      else if (t === '}' && --depth === 0) return;
    }
  };
  const stack: ({ kind: 'message'; def: MessageDef } | { kind: 'oneof'; name: string } | { kind: 'enum' })[] = [];
  const message = (): MessageDef => {
    for (let k = stack.length - 1; k >= 0; k--) {
      const s = stack[k]!;
      if (s.kind === 'message') return s.def;
    }
    throw new Error('field outside a message');
  };
  while (i < tokens.length) {
    const t = next();
    const top = stack[stack.length - 1];
    if (t === '}') {
      stack.pop();
      continue;
    }
    if (t === ';') continue;
    if (top?.kind === 'enum') {
      skipStatement(); // NAME = N [options];
      continue;
    }
    if (t === 'syntax' || t === 'package' || t === 'import' || t === 'option' || t === 'reserved') {
      skipStatement();
      continue;
    }
    if (t === 'service') {
      next();
      skipBlock();
      continue;
    }
    if (t === 'message' || t === 'enum') {
      const name = next();
      if (next() !== '{') throw new Error(`expected { after ${t} ${name}`);
      if (schema.messages.has(name) || schema.enums.has(name)) throw new Error(`two types named ${name}: short names must be unique here`);
      if (t === 'message') {
        const def: MessageDef = { name, fields: new Map() };
        schema.messages.set(name, def);
        stack.push({ kind: 'message', def });
      } else {
        schema.enums.add(name);
        stack.push({ kind: 'enum' });
      }
      continue;
    }
    if (t === 'oneof') {
      const name = next();
      next(); // {
      stack.push({ kind: 'oneof', name });
      continue;
    }
    // A field: [repeated|optional] type name = number [options];
    let repeated = false;
    let type = t;
    if (t === 'repeated' || t === 'optional') {
      repeated = t === 'repeated';
      type = next();
    }
    const name = next();
    if (next() !== '=') throw new Error(`expected = after field ${name}`);
    const number = Number(next());
    skipStatement();
    const def = message();
    if (def.fields.has(number)) throw new Error(`${def.name}: field number ${number} twice`);
    def.fields.set(number, { name, type: type.split('.').pop()!, repeated, ...(top?.kind === 'oneof' && { oneof: top.name }) });
  }
}

const camel = (s: string): string => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
/** OTLP/JSON writes these bytes fields as hex, the others (none the proxy sets) as base64. */
const HEX_FIELDS = new Set(['trace_id', 'span_id', 'parent_span_id']);

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.buf.length) throw new Error('truncated varint');
      const b = this.buf[this.pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 63n) throw new Error('varint longer than 10 bytes');
    }
  }
  take(n: number): Buffer {
    if (this.pos + n > this.buf.length) throw new Error(`truncated: ${n} bytes wanted at ${this.pos} of ${this.buf.length}`);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
}

const WIRE: Record<string, number> = {
  int32: 0, int64: 0, uint32: 0, uint64: 0, sint32: 0, sint64: 0, bool: 0,
  fixed64: 1, sfixed64: 1, double: 1,
  string: 2, bytes: 2,
  fixed32: 5, sfixed32: 5, float: 5,
};

function scalarFrom(type: string, wire: number, r: Reader): unknown {
  switch (type) {
    case 'bool':
      return r.varint() !== 0n;
    case 'int32':
      return Number(BigInt.asIntN(32, r.varint()));
    case 'uint32':
      return Number(BigInt.asUintN(32, r.varint()));
    case 'int64':
      return String(BigInt.asIntN(64, r.varint()));
    case 'uint64':
      return String(r.varint());
    case 'sint32':
    case 'sint64': {
      const n = r.varint();
      return type === 'sint32' ? Number((n >> 1n) ^ -(n & 1n)) : String((n >> 1n) ^ -(n & 1n));
    }
    case 'fixed64':
      return String(r.take(8).readBigUInt64LE());
    case 'sfixed64':
      return String(r.take(8).readBigInt64LE());
    case 'double':
      return r.take(8).readDoubleLE();
    case 'fixed32':
      return r.take(4).readUInt32LE();
    case 'sfixed32':
      return r.take(4).readInt32LE();
    case 'float':
      return r.take(4).readFloatLE();
  }
  throw new Error(`scalar ${type} with wire type ${wire}`);
}

/** Decodes `buf` as message `type` of the schema into OTLP's JSON shape. */
export function decode(schema: Schema, type: string, buf: Buffer): Record<string, unknown> {
  const def = schema.messages.get(type);
  if (!def) throw new Error(`no message ${type} in the schema`);
  const out: Record<string, unknown> = {};
  const oneofs = new Map<string, string>();
  const r = new Reader(buf);
  while (r.pos < buf.length) {
    const tag = r.varint();
    const number = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    const f = def.fields.get(number);
    if (!f) throw new Error(`${type}: unknown field number ${number} (wire type ${wire})`);
    const key = camel(f.name);
    const values: unknown[] = [];
    if (schema.messages.has(f.type)) {
      if (wire !== 2) throw new Error(`${type}.${f.name}: message with wire type ${wire}`);
      values.push(decode(schema, f.type, r.take(Number(r.varint()))));
    } else if (schema.enums.has(f.type)) {
      if (wire !== 0) throw new Error(`${type}.${f.name}: enum with wire type ${wire}`);
      values.push(Number(BigInt.asIntN(32, r.varint())));
    } else if (f.type === 'string' || f.type === 'bytes') {
      if (wire !== 2) throw new Error(`${type}.${f.name}: ${f.type} with wire type ${wire}`);
      const b = r.take(Number(r.varint()));
      values.push(f.type === 'string' ? new TextDecoder('utf-8', { fatal: true }).decode(b) : HEX_FIELDS.has(f.name) ? b.toString('hex') : b.toString('base64'));
    } else if (SCALARS.has(f.type)) {
      const expected = WIRE[f.type]!;
      if (wire === 2 && f.repeated) {
        const sub = new Reader(r.take(Number(r.varint())));
        while (sub.pos < sub.buf.length) values.push(scalarFrom(f.type, expected, sub));
      } else if (wire === expected) {
        values.push(scalarFrom(f.type, wire, r));
      } else {
        throw new Error(`${type}.${f.name}: ${f.type} with wire type ${wire}`);
      }
    } else {
      throw new Error(`${type}.${f.name}: unknown type ${f.type}`);
    }
    if (f.repeated) {
      ((out[key] ??= []) as unknown[]).push(...values);
    } else {
      if (key in out) throw new Error(`${type}.${f.name}: written twice`);
      if (f.oneof) {
        const other = oneofs.get(f.oneof);
        if (other !== undefined) throw new Error(`${type}: oneof ${f.oneof} has both ${other} and ${f.name}`);
        oneofs.set(f.oneof, f.name);
      }
      out[key] = values[0];
    }
  }
  return out;
}
