/**
 * The safetensors format: an 8-byte little-endian header length N, N bytes of JSON naming every tensor
 * (dtype, shape, data_offsets relative to the end of the header), then the raw little-endian data.
 * Parsing reads the header only; converting turns one tensor's bytes into a Float32Array.
 */
import {WorkbenchError} from "../errors.js";

export type Dtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL"
  | "F8_E4M3"
  | "F8_E5M2";

/** Bytes per element of every dtype safetensors defines. */
const DTYPE_SIZE: Record<Dtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1
};

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte offsets in the file: the tensor is bytes [begin, end). */
  begin: number;
  end: number;
  file: string;
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  /** Where the data section starts: 8 + header length. */
  dataOffset: number;
}

/** Headers larger than this are taken for corruption rather than read. */
export const MAX_HEADER_BYTES = 100_000_000;

/**
 * The header length N stored in the first 8 bytes; the whole header is bytes [0, 8 + N).
 * Throws when the file is too short to hold it or when N is implausible.
 */
export function headerLength(bytes: Uint8Array, file: string, fileSize?: number): number {
  if (bytes.length < 8) {
    throw new WorkbenchError(
      `${file}: truncated safetensors file (${bytes.length} bytes, the header length alone takes 8)`
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
  const length = Number(view.getBigUint64(0, true));
  if (length > MAX_HEADER_BYTES || (fileSize !== undefined && 8 + length > fileSize)) {
    const size = fileSize === undefined ? "" : ` in a file of ${fileSize} bytes`;
    throw new WorkbenchError(`${file}: corrupt or oversized header (header length ${length}${size})`);
  }
  return length;
}

/** Parses the header from `bytes`, which holds at least the file's first 8 + N bytes. */
export function parseHeader(bytes: Uint8Array, file: string, fileSize?: number): SafetensorsHeader {
  const length = headerLength(bytes, file, fileSize);
  const dataOffset = 8 + length;
  if (bytes.length < dataOffset) {
    throw new WorkbenchError(`${file}: truncated header (${bytes.length} bytes, the header needs ${dataOffset})`);
  }

  let json: unknown;
  try {
    // fatal: a header that is not UTF-8 is refused, not read with U+FFFD in place of its bytes (as the Rust
    // reader refuses it).
    json = JSON.parse(new TextDecoder("utf-8", {fatal: true}).decode(bytes.subarray(8, dataOffset)));
  } catch (error) {
    const why = error instanceof TypeError ? "it is not valid UTF-8" : (error as Error).message;
    throw new WorkbenchError(`${file}: header is not valid JSON (${why})`, {cause: error});
  }
  if (!isObject(json)) throw new WorkbenchError(`${file}: header is not a JSON object`);

  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(json)) {
    if (name === "__metadata__") {
      if (isObject(entry)) metadata = entry as Record<string, string>;
      continue;
    }
    tensors.set(name, parseEntry(name, entry, file, dataOffset, fileSize));
  }
  checkNoOverlap(tensors, file);
  return {tensors, metadata, dataOffset};
}

function parseEntry(name: string, entry: unknown, file: string, dataOffset: number, fileSize?: number): TensorInfo {
  const where = `tensor ${name} in ${file}`;
  if (!isObject(entry)) throw new WorkbenchError(`${where}: entry is not an object`);
  const {dtype, shape, data_offsets: offsets} = entry;

  if (typeof dtype !== "string") throw new WorkbenchError(`${where}: missing dtype`);
  // Object.hasOwn, not `in`: a dtype named "toString" or "__proto__" is not a dtype.
  if (!Object.hasOwn(DTYPE_SIZE, dtype)) throw new WorkbenchError(`${where}: unknown dtype ${dtype}`);
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw new WorkbenchError(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
    throw new WorkbenchError(`${where}: data_offsets must be [begin, end], got ${JSON.stringify(offsets)}`);
  }

  const expected = numel(shape) * DTYPE_SIZE[dtype as Dtype];
  const actual = offsets[1] - offsets[0];
  if (actual !== expected) {
    throw new WorkbenchError(
      `${where}: ${actual} bytes for shape [${shape.join(", ")}] of ${dtype}, which needs ${expected}`
    );
  }

  const begin = dataOffset + offsets[0];
  const end = dataOffset + offsets[1];
  if (fileSize !== undefined && end > fileSize) {
    throw new WorkbenchError(`${where}: offsets [${begin}, ${end}) out of bounds (file has ${fileSize} bytes)`);
  }
  return {name, dtype, shape, begin, end, file};
}

/** Two tensors may not share bytes: a file whose tensors overlap is corrupt (the Rust reader refuses it too). */
function checkNoOverlap(tensors: Map<string, TensorInfo>, file: string): void {
  const sorted = [...tensors.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const [a, b] = [sorted[i - 1], sorted[i]];
    if (b.begin < a.end)
      throw new WorkbenchError(
        `${file}: tensors ${a.name} [${a.begin}, ${a.end}) and ${b.name} [${b.begin}, ${b.end}) overlap: the file is corrupt`
      );
  }
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((product, n) => product * n, 1);
}

/** Converts one tensor's bytes (exactly bytes [begin, end) of its file) to float32. */
export function toFloat32(info: TensorInfo, bytes: Uint8Array): Float32Array {
  const length = info.end - info.begin;
  if (bytes.length !== length) {
    throw new WorkbenchError(`tensor ${info.name} in ${info.file}: got ${bytes.length} bytes, expected ${length}`);
  }
  const n = numel(info.shape);
  switch (info.dtype) {
    case "F32": {
      // A view of the file's bytes where they are aligned (safetensors pads its header so they are): no copy.
      const source = aligned(bytes, 4);
      return new Float32Array(source.buffer, source.byteOffset, n);
    }
    case "F64": {
      const source = aligned(bytes, 8);
      return Float32Array.from(new Float64Array(source.buffer, source.byteOffset, n));
    }
    case "F16":
      return convert16(bytes, n, halfToFloat);
    case "BF16":
      return convert16(bytes, n, bfloat16ToFloat);
    default:
      throw new WorkbenchError(`unsupported dtype ${info.dtype} for tensor ${info.name} in ${info.file}`);
  }
}

/** `bytes` itself when its offset is a multiple of `alignment`, else an aligned copy. */
function aligned(bytes: Uint8Array, alignment: number): Uint8Array {
  return bytes.byteOffset % alignment === 0 ? bytes : bytes.slice();
}

function convert16(bytes: Uint8Array, n: number, toFloat: (bits: number) => number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = toFloat(view.getUint16(2 * i, true));
  return out;
}

const scratch = new DataView(new ArrayBuffer(4));

/** bfloat16 is the top half of a float32. */
function bfloat16ToFloat(bits: number): number {
  scratch.setUint32(0, bits << 16);
  return scratch.getFloat32(0);
}

/** IEEE 754 half precision: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits. */
function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // zero and subnormals
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}
