// A small DER (ASN.1 Distinguished Encoding Rules) writer over Buffers, and a reader just deep enough to walk a
// certificate's top-level structure. Enough for the trust store (PKCS#12), leaf certificates and CSRs, so that
// the proxy, which starts in every pod, never loads a general ASN.1 library (@peculiar/x509 and its asn1
// dependencies cost ~20 MiB and ~150–200 ms to import).

/** Tag, length, value. */
export function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let head: Buffer;
  if (n < 0x80) head = Buffer.from([tag, n]);
  else if (n < 0x100) head = Buffer.from([tag, 0x81, n]);
  else if (n < 0x10000) head = Buffer.from([tag, 0x82, n >> 8, n & 0xff]);
  else if (n < 0x1000000) head = Buffer.from([tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  else throw new RangeError(`DER value of ${n} bytes is too long`);
  return Buffer.concat([head, content]);
}

export const seq = (items: readonly Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
export const set = (items: readonly Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
export const octets = (b: Buffer): Buffer => tlv(0x04, b);
/** A BIT STRING of whole bytes (no unused bits). */
export const bits = (b: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), b]));
export const utf8 = (text: string): Buffer => tlv(0x0c, Buffer.from(text, 'utf8'));
/** Context-specific, constructed: `[n] EXPLICIT` or an IMPLICIT constructed type. */
export const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);
/** Context-specific, primitive: `[n] IMPLICIT` of a primitive type. */
export const implicit = (n: number, content: Buffer): Buffer => tlv(0x80 | n, content);
export const NULL = Buffer.from([0x05, 0x00]);
export const TRUE = Buffer.from([0x01, 0x01, 0xff]);

/** A non-negative INTEGER from a number. */
export function integer(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`DER integer ${n} is not a non-negative safe integer`);
  const bytes: number[] = [];
  do {
    bytes.unshift(n & 0xff);
    n = Math.floor(n / 256);
  } while (n > 0);
  if (bytes[0]! & 0x80) bytes.unshift(0);
  return tlv(0x02, Buffer.from(bytes));
}

/** A non-negative INTEGER from big-endian bytes (serial numbers): minimal, with a 0 byte if the top bit is set. */
export function unsignedInteger(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0 && bytes[i + 1]! < 0x80) i++;
  const b = bytes.subarray(i);
  return tlv(0x02, b.length > 0 && b[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b);
}

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** BMPString: UTF-16 big-endian. */
export function bmp(text: string): Buffer {
  const b = Buffer.from(text, 'utf16le');
  b.swap16();
  return tlv(0x1e, b);
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; always UTC, whole seconds. */
export function time(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '') + 'Z';
  const year = d.getUTCFullYear();
  if (year < 1950 || year > 9999) throw new RangeError(`certificate time ${iso} is out of range`);
  return year < 2050 ? tlv(0x17, Buffer.from(digits.slice(2), 'ascii')) : tlv(0x18, Buffer.from(digits, 'ascii'));
}

/** One element read from DER: its tag, and where its whole encoding and its content lie in the input. */
export interface DerElement {
  tag: number;
  /** The whole element (tag, length and content). */
  raw: Buffer;
  content: Buffer;
}

/** Reads the element at `offset`; throws on truncated or indefinite-length input. */
export function readElement(buf: Buffer, offset = 0): DerElement {
  if (offset + 2 > buf.length) throw new Error('DER: truncated element');
  const tag = buf[offset]!;
  let len = buf[offset + 1]!;
  let start = offset + 2;
  if (len & 0x80) {
    const count = len & 0x7f;
    if (count === 0 || count > 4) throw new Error('DER: unsupported length encoding');
    if (start + count > buf.length) throw new Error('DER: truncated length');
    len = 0;
    for (let i = 0; i < count; i++) len = len * 256 + buf[start + i]!;
    start += count;
  }
  if (start + len > buf.length) throw new Error('DER: truncated content');
  return { tag, raw: buf.subarray(offset, start + len), content: buf.subarray(start, start + len) };
}

/** The elements inside a constructed element's content, in order. */
export function children(content: Buffer): DerElement[] {
  const out: DerElement[] = [];
  for (let off = 0; off < content.length; ) {
    const e = readElement(content, off);
    out.push(e);
    off += e.raw.length;
  }
  return out;
}
