/**
 * Protocol-buffer wire format: a minimal reader and writer, enough for ONNX's ModelProto.
 *
 * Why hand-written rather than protobufjs: bytes fields (tensor raw_data) come back as views into
 * the file's buffer and go out as references to those same bytes, so a 90 MB model round-trips
 * without copying its weights until the final concatenation; and fields the codec does not model
 * are kept as their raw encoded bytes, so nothing is dropped.
 */

/** A protobuf int64: a number when it fits in 53 bits (almost always), otherwise a bigint. */
export type Int64 = number | bigint;

export enum WireType {
  Varint = 0,
  Fixed64 = 1,
  LengthDelimited = 2,
  StartGroup = 3,
  EndGroup = 4,
  Fixed32 = 5,
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export class ProtoError extends Error {
  override name = 'ProtoError';
}

export class Reader {
  readonly buf: Buffer;
  pos: number;
  end: number;

  constructor(bytes: Uint8Array, start = 0, end = bytes.byteLength) {
    this.buf = asBuffer(bytes);
    this.pos = start;
    this.end = end;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** A varint that must fit in 32 bits unsigned (tags, lengths, enums, int32 fields). */
  uint32(): number {
    const buf = this.buf;
    let result = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.end) throw new ProtoError('truncated varint');
      const b = buf[this.pos++]!;
      // Only the low 32 bits matter (negative int32 values arrive sign-extended to 10 bytes).
      if (shift < 32) result |= (b & 0x7f) << shift;
      if (b < 0x80) break;
      shift += 7;
      if (shift > 63) throw new ProtoError('varint too long');
    }
    return result >>> 0;
  }

  /** An int32 field (signed). */
  int32(): number {
    return this.uint32() | 0;
  }

  /** An int64 varint, two's complement. */
  int64(): Int64 {
    const buf = this.buf;
    const start = this.pos;
    let result = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.end) throw new ProtoError('truncated varint');
      const b = buf[this.pos++]!;
      if (shift === 49) {
        // More than 7 bytes: redo it exactly with bigint.
        this.pos = start;
        return this.int64Big(true);
      }
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return result;
      shift += 7;
    }
  }

  /** A uint64 varint. */
  uint64(): Int64 {
    const start = this.pos;
    const v = this.int64();
    if (typeof v === 'number' && v >= 0) return v;
    this.pos = start;
    return this.int64Big(false);
  }

  private int64Big(signed: boolean): Int64 {
    const buf = this.buf;
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.end) throw new ProtoError('truncated varint');
      const b = buf[this.pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) break;
      shift += 7n;
      if (shift > 63n) throw new ProtoError('varint too long');
    }
    const v = signed ? BigInt.asIntN(64, result) : BigInt.asUintN(64, result);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  float(): number {
    if (this.pos + 4 > this.end) throw new ProtoError('truncated float');
    const v = this.buf.readFloatLE(this.pos);
    this.pos += 4;
    return v;
  }

  double(): number {
    if (this.pos + 8 > this.end) throw new ProtoError('truncated double');
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }

  /** A length-delimited payload, as a view into the source (no copy). */
  bytes(): Buffer {
    const len = this.uint32();
    const start = this.pos;
    const end = start + len;
    if (end > this.end) throw new ProtoError(`length ${len} runs past the end of the message`);
    this.pos = end;
    return this.buf.subarray(start, end);
  }

  /** Start and end of a length-delimited payload, advancing past it. */
  span(): [number, number] {
    const len = this.uint32();
    const start = this.pos;
    const end = start + len;
    if (end > this.end) throw new ProtoError(`length ${len} runs past the end of the message`);
    this.pos = end;
    return [start, end];
  }

  string(): string {
    const [start, end] = this.span();
    return this.buf.toString('utf8', start, end);
  }

  /** Skips a field's payload (the tag has been read). */
  skip(wireType: number): void {
    switch (wireType) {
      case WireType.Varint:
        while (this.buf[this.pos++]! & 0x80) if (this.pos >= this.end) throw new ProtoError('truncated varint');
        break;
      case WireType.Fixed64:
        this.pos += 8;
        break;
      case WireType.LengthDelimited:
        this.span();
        break;
      case WireType.StartGroup:
        for (;;) {
          const tag = this.uint32();
          if ((tag & 7) === WireType.EndGroup) break;
          this.skip(tag & 7);
        }
        break;
      case WireType.Fixed32:
        this.pos += 4;
        break;
      default:
        throw new ProtoError(`unknown wire type ${wireType}`);
    }
    if (this.pos > this.end) throw new ProtoError('field runs past the end of the message');
  }

  /** Skips the field whose tag started at `tagStart` and returns its raw bytes (tag included). */
  unknown(tagStart: number, wireType: number): Buffer {
    this.skip(wireType);
    return this.buf.subarray(tagStart, this.pos);
  }

  /**
   * Reads one occurrence of a repeated scalar field: a packed run (length-delimited) or a single
   * unpacked value. Parsers must accept both forms, whatever the schema declares.
   */
  repeated(wireType: number, one: () => void): void {
    if (wireType !== WireType.LengthDelimited) {
      one();
      return;
    }
    const len = this.uint32();
    const runEnd = this.pos + len;
    if (runEnd > this.end) throw new ProtoError(`packed run of ${len} bytes runs past the end of the message`);
    const outerEnd = this.end;
    this.end = runEnd;
    try {
      while (this.pos < runEnd) one();
    } finally {
      this.end = outerEnd;
    }
    if (this.pos !== runEnd) throw new ProtoError('packed run misaligned');
  }
}

/** Bytes at or above this size are referenced rather than copied into the scratch buffer. */
const REFERENCE_THRESHOLD = 1024;
const SCRATCH_SIZE = 64 * 1024;

/**
 * Writes a message as a list of chunks: small fields go through a scratch buffer, large byte
 * fields are kept as references. Nested messages are written by a child writer whose total length
 * is then known, so no size pre-pass is needed.
 */
export class Writer {
  private readonly chunks: Uint8Array[] = [];
  private scratch: Buffer = Buffer.allocUnsafe(256);
  private pos = 0;
  private flushed = 0;

  get length(): number {
    return this.flushed + this.pos;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.scratch.length) return;
    this.flush();
    if (n > this.scratch.length) this.scratch = Buffer.allocUnsafe(Math.max(n, SCRATCH_SIZE));
    else if (this.scratch.length < SCRATCH_SIZE) this.scratch = Buffer.allocUnsafe(SCRATCH_SIZE);
  }

  private flush(): void {
    if (this.pos === 0) return;
    this.chunks.push(this.scratch.subarray(0, this.pos));
    this.flushed += this.pos;
    this.scratch = this.scratch.subarray(this.pos);
    this.pos = 0;
    if (this.scratch.length < 64) this.scratch = Buffer.allocUnsafe(SCRATCH_SIZE);
  }

  tag(field: number, wireType: WireType): this {
    return this.uint32(field * 8 + wireType);
  }

  uint32(v: number): this {
    this.ensure(5);
    const buf = this.scratch;
    v >>>= 0;
    while (v > 0x7f) {
      buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[this.pos++] = v;
    return this;
  }

  /** An int32 field: negatives are sign-extended to 64 bits (10 bytes), as protobuf requires. */
  int32(v: number): this {
    return v >= 0 ? this.uint32(v) : this.int64(v);
  }

  int64(v: Int64): this {
    this.ensure(10);
    const buf = this.scratch;
    if (typeof v === 'number' && v >= 0 && Number.isSafeInteger(v)) {
      while (v >= 0x80) {
        buf[this.pos++] = (v % 0x80) | 0x80;
        v = Math.floor(v / 0x80);
      }
      buf[this.pos++] = v;
      return this;
    }
    let big = BigInt.asUintN(64, BigInt(v));
    while (big >= 0x80n) {
      buf[this.pos++] = Number(big & 0x7fn) | 0x80;
      big >>= 7n;
    }
    buf[this.pos++] = Number(big);
    return this;
  }

  float(v: number): this {
    this.ensure(4);
    this.scratch.writeFloatLE(v, this.pos);
    this.pos += 4;
    return this;
  }

  double(v: number): this {
    this.ensure(8);
    this.scratch.writeDoubleLE(v, this.pos);
    this.pos += 8;
    return this;
  }

  /** Appends bytes verbatim (no tag, no length). Large ones are referenced, not copied. */
  raw(bytes: Uint8Array): this {
    if (bytes.byteLength >= REFERENCE_THRESHOLD) {
      this.flush();
      this.chunks.push(bytes);
      this.flushed += bytes.byteLength;
    } else {
      this.ensure(bytes.byteLength);
      this.scratch.set(bytes, this.pos);
      this.pos += bytes.byteLength;
    }
    return this;
  }

  bytesField(field: number, bytes: Uint8Array): this {
    this.tag(field, WireType.LengthDelimited).uint32(bytes.byteLength);
    return this.raw(bytes);
  }

  stringField(field: number, s: string): this {
    const len = Buffer.byteLength(s, 'utf8');
    this.tag(field, WireType.LengthDelimited).uint32(len);
    this.ensure(len);
    this.pos += this.scratch.write(s, this.pos, 'utf8');
    return this;
  }

  int64Field(field: number, v: Int64): this {
    return this.tag(field, WireType.Varint).int64(v);
  }

  int32Field(field: number, v: number): this {
    return this.tag(field, WireType.Varint).int32(v);
  }

  floatField(field: number, v: number): this {
    return this.tag(field, WireType.Fixed32).float(v);
  }

  /** A nested message, written by `body` into a child writer. */
  message(field: number, body: (w: Writer) => void): this {
    const child = new Writer();
    body(child);
    this.tag(field, WireType.LengthDelimited).uint32(child.length);
    return this.append(child);
  }

  /** A packed repeated field whose payload `body` writes. */
  packed(field: number, body: (w: Writer) => void): this {
    return this.message(field, body);
  }

  private append(child: Writer): this {
    child.flush();
    this.flush();
    for (const c of child.chunks) this.chunks.push(c);
    this.flushed += child.flushed;
    return this;
  }

  /** The chunks, in order (for writev-style output without a final copy). */
  parts(): Uint8Array[] {
    this.flush();
    return this.chunks;
  }

  /** One contiguous buffer. */
  finish(): Buffer {
    this.flush();
    if (this.chunks.length === 1) return asBuffer(this.chunks[0]!);
    return Buffer.concat(this.chunks, this.flushed);
  }
}
