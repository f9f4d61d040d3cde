/**
 * Every delivery a load worker saw, kept in growing typed arrays (off the JS heap, so a
 * scavenge never copies them and recording allocates nothing that survives one) and handed
 * to the main process as a file at the end: who got which message, when, its
 * publish-to-receive latency, and a tag (the connection number of a reconnecting client).
 * Long runs check lost and duplicate deliveries after the fact from these records.
 */
import { readFileSync, writeFileSync } from 'node:fs';

export class DeliveryLog {
  length = 0;

  constructor(capacity = 1 << 16) {
    this.allocate(capacity);
  }

  allocate(capacity) {
    const grow = (Type, old) => {
      const next = new Type(capacity);
      if (old) next.set(old.subarray(0, this.length));
      return next;
    };
    this.at = grow(Float64Array, this.at);
    this.latency = grow(Float64Array, this.latency);
    this.who = grow(Int32Array, this.who);
    this.seq = grow(Int32Array, this.seq);
    this.tag = grow(Int32Array, this.tag);
  }

  /** One delivery: receiver id, message seq, arrival (monotonic us), latency (us), tag. */
  push(who, seq, at, latency, tag = 0) {
    if (this.length === this.who.length) this.allocate(this.length * 2);
    const i = this.length++;
    this.who[i] = who;
    this.seq[i] = seq;
    this.at[i] = at;
    this.latency[i] = latency;
    this.tag[i] = tag;
  }

  /** Writes the records to `file`: a count, then the columns (8-byte ones first, for alignment). */
  dump(file) {
    const n = this.length;
    const head = Buffer.alloc(8);
    head.writeUInt32LE(n, 0);
    const bytes = (a) => Buffer.from(a.buffer, a.byteOffset, n * a.BYTES_PER_ELEMENT);
    writeFileSync(file, Buffer.concat([head, bytes(this.at), bytes(this.latency), bytes(this.who), bytes(this.seq), bytes(this.tag)]));
  }
}

/** Reads a file DeliveryLog.dump wrote: {length, at, latency, who, seq, tag}. */
export function readDeliveryLog(file) {
  const buf = readFileSync(file);
  // A fresh ArrayBuffer, so every column starts at an offset its element size divides.
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
  const n = new DataView(ab).getUint32(0, true);
  let offset = 8;
  const take = (Type) => {
    const a = new Type(ab, offset, n);
    offset += n * Type.BYTES_PER_ELEMENT;
    return a;
  };
  return { length: n, at: take(Float64Array), latency: take(Float64Array), who: take(Int32Array), seq: take(Int32Array), tag: take(Int32Array) };
}
