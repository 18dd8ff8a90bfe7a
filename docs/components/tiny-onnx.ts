// A tiny ONNX model written byte by byte: logits = x · W, probs = softmax(logits).
// Enough protobuf to prove that onnxruntime-web runs in the page; the engine's graph builder
// (src/graph/) replaces this once it lands.

const FLOAT = 1; // TensorProto.DataType.FLOAT

function varint(value: number): number[] {
  const out: number[] = [];
  let n = BigInt(value);
  for (; n > 0x7fn; n >>= 7n) out.push(Number(n & 0x7fn) | 0x80);
  out.push(Number(n));
  return out;
}
const key = (field: number, wire: number): number[] => varint((field << 3) | wire);
const int = (field: number, n: number): number[] => [...key(field, 0), ...varint(n)];
function bytes(field: number, data: string | ArrayLike<number>): number[] {
  const b = typeof data === "string" ? [...new TextEncoder().encode(data)] : Array.from(data);
  return [...key(field, 2), ...varint(b.length), ...b];
}
const message = (field: number, ...parts: number[][]): number[] => bytes(field, parts.flat());

function valueInfo(field: number, name: string, shape: number[]): number[] {
  const dims = shape.map((d) => message(1, int(1, d))); // TensorShapeProto.Dimension.dim_value
  const tensorType = message(1, int(1, FLOAT), message(2, ...dims)); // TypeProto.tensor_type
  return message(field, bytes(1, name), message(2, tensorType)); // ValueInfoProto {name, type}
}
function initializer(name: string, shape: number[], values: number[]): number[] {
  const raw = new Uint8Array(Float32Array.from(values).buffer);
  return message(5, ...shape.map((d) => int(1, d)), int(2, FLOAT), bytes(8, name), bytes(9, raw));
}
function node(opType: string, inputs: string[], outputs: string[]): number[] {
  return message(
    1,
    ...inputs.map((i) => bytes(1, i)),
    ...outputs.map((o) => bytes(2, o)),
    bytes(3, opType),
    bytes(4, opType)
  );
}

/** W, 4 × 3, row-major. */
export const W = [0.5, -1, 0.25, 1.5, 0, -0.5, -0.75, 2, 1, 0.1, 0.3, -0.2];

/** The model's bytes: input "x" [1, 4]; outputs "logits" and "probs" [1, 3]. */
export function tinySoftmaxModel(): Uint8Array {
  const graph = message(
    7, // ModelProto.graph
    node("MatMul", ["x", "W"], ["logits"]),
    node("Softmax", ["logits"], ["probs"]),
    bytes(2, "tiny-softmax"),
    initializer("W", [4, 3], W),
    valueInfo(11, "x", [1, 4]),
    valueInfo(12, "logits", [1, 3]),
    valueInfo(12, "probs", [1, 3])
  );
  const opset = message(8, bytes(1, ""), int(2, 17)); // ModelProto.opset_import
  return Uint8Array.from([...int(1, 8), ...bytes(2, "lm-workbench"), ...graph, ...opset]); // ir_version 8
}

/** The same computation in plain JavaScript (float64), to check ort against. */
export function referenceForward(x: number[]): {logits: number[]; probs: number[]} {
  const logits = [0, 1, 2].map((j) => x.reduce((s, xi, i) => s + xi * W[i * 3 + j], 0));
  const m = Math.max(...logits);
  const e = logits.map((l) => Math.exp(l - m));
  const z = e.reduce((a, b) => a + b, 0);
  return {logits, probs: e.map((v) => v / z)};
}
