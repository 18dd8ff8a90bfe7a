/**
 * A small builder for ONNX graphs, encoded with onnx-proto (protobufjs).
 *
 * The architectures in `src/arch/` describe a forward pass as calls on a `GraphBuilder`: `g.op("MatMul", [x, w])`
 * returns the name of the new tensor. Weights are kept out of the protobuf, in one of two ways:
 *
 * - as graph *inputs* (`new GraphBuilder(weights)` with a model's `WeightInputs`): every graph of one model (the
 *   trace graph, each edit structure's, the lens's, the packed one) names the same inputs, and the model feeds the
 *   same tensors to every run. onnxruntime gives each session its own copy of its initializers (measured in
 *   docs/performance.md: ~600 MB more per session for SmolLM2-135M, whatever the session options), so inputs are
 *   how one model keeps one copy of its weights whatever the number of its sessions;
 * - as *initializers*, each an external-data file whose bytes are its Float32Array, handed to onnxruntime through
 *   the `externalData` session option: on WebGPU, where each session uploads its weights to the GPU once (fed CPU
 *   tensors would cross to it every run), and for graphs built without a model (the probe, the bench's).
 *
 * Either way the protobuf stays small and no model is limited by protobuf's 2 GB.
 */
import onnxProto from "onnx-proto";
import {numel} from "../hub/safetensors.js";

const {onnx} = onnxProto;

export const OPSET = 17;
/** onnxruntime's contrib ops (fused norms, attention with rotary and a key/value cache): `com.microsoft.<Op>`. */
export const MS_DOMAIN = "com.microsoft";

export const FLOAT = onnx.TensorProto.DataType.FLOAT;
export const INT64 = onnx.TensorProto.DataType.INT64;
export const BOOL = onnx.TensorProto.DataType.BOOL;
export const INT32 = onnx.TensorProto.DataType.INT32;
export const FLOAT16 = onnx.TensorProto.DataType.FLOAT16;

export type Attribute = number | number[] | string | Subgraph;

/** A graph as a node's attribute: the branches of an `If` (`GraphBuilder.subgraph`). */
export interface Subgraph {
  graph: InstanceType<typeof onnx.GraphProto>;
}
export type Dim = number | string;

export interface EncodedModel {
  /** The ModelProto bytes, without weights. */
  model: Uint8Array;
  /** The hook points with an edit slot, in slot order (graph/hooks.ts `editSlots`); empty without. */
  editSlots: string[];
  /** The weights, as onnxruntime's `externalData` session option takes them. */
  externalData: ExternalFile[];
}

/**
 * A weight's external-data "file". One whose values the graph was given as a function (a transpose, a checkpoint
 * tensor, a random draw) has `lazy`: `data` makes its bytes on first access, and `lazy.make` is what
 * runtime/model.ts `releasedAsCopied` calls when onnxruntime-web reads the file, so that no weight is made before
 * onnxruntime copies it and each is freed soon after — loading then holds the weights once, not once plus the one
 * being copied.
 */
export interface ExternalFile {
  path: string;
  data: Uint8Array;
  lazy?: {byteLength: number; make(): Uint8Array};
}

interface PendingWeight {
  name: string;
  dims: number[];
  data: Float32Array | Uint16Array | (() => Float32Array);
}

/** A weight as a graph input: float32, or float16 bits (a `Uint16Array`) widened to float32 inside the graph. */
export interface WeightInput {
  dims: number[];
  data: Float32Array | Uint16Array;
}

/**
 * One model's weights as graph inputs, shared by all of its graphs: the first graph that names a weight computes
 * its values (its thunk runs once); every later graph names the same input and computes nothing. The model feeds
 * `tensors` to every run, so all of its sessions read the same buffers.
 */
export class WeightInputs {
  readonly tensors = new Map<string, WeightInput>();

  /**
   * @param halfPrecision Store a weight as float16 where that keeps its values (a bf16 or fp16 checkpoint's
   *   weights, `toHalf`): half the bytes, widened by a Cast in the graph. Off, every weight stays float32.
   */
  constructor(readonly halfPrecision = false) {}

  /** The weight `name`, made on first use. A name must keep its shape in every graph of the model. */
  take(name: string, data: Float32Array | (() => Float32Array), dims: number[]): WeightInput {
    const known = this.tensors.get(name);
    if (known) {
      if (known.dims.join() !== dims.join())
        throw new Error(`weight ${name}: shape [${dims}] in this graph, [${known.dims}] in the model's first graph`);
      return known;
    }
    const values = typeof data === "function" ? data() : data;
    checkNumel(name, values.length, dims);
    const half = this.halfPrecision ? toHalf(values) : undefined;
    const made = {dims, data: half ?? values};
    this.tensors.set(name, made);
    return made;
  }

  /** The graph input each weight is fed through: its name, or `name.fp16` where it is stored at half precision. */
  inputNames(): Map<string, WeightInput> {
    return new Map([...this.tensors].map(([name, t]) => [t.data instanceof Uint16Array ? `${name}.fp16` : name, t]));
  }

  /** Bytes held: the model's one copy of its weights. */
  get bytes(): number {
    let total = 0;
    for (const t of this.tensors.values()) total += t.data.byteLength;
    return total;
  }
}

function checkNumel(name: string, length: number, dims: number[]): void {
  if (numel(dims) !== length) throw new Error(`weight ${name}: ${length} values for shape [${dims}]`);
}

/** Below the smallest normal float16 (2⁻¹⁴), float16 keeps fewer bits: values there round, by at most 2⁻²⁵. */
const HALF_MIN_NORMAL = 2 ** -14;

/**
 * `values` as float16 bits, if float16 holds them: every value exactly, except that values below 2⁻¹⁴ in
 * magnitude (float16's subnormals) may round by at most 2⁻²⁵ ≈ 3e-8 — a bfloat16 weight that small keeps bits
 * float16 has not. Undefined where a value is beyond float16's range or needs more than its 11 significant bits
 * (an fp32 checkpoint's weights, random weights): those stay float32.
 */
export function toHalf(values: Float32Array): Uint16Array | undefined {
  const out = new Uint16Array(values.length);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < values.length; i++) {
    const b = bits[i];
    const sign = (b >>> 16) & 0x8000;
    const exponent = (b >>> 23) & 0xff;
    const mantissa = b & 0x7fffff;
    if (exponent === 0 && mantissa === 0) {
      out[i] = sign; // ±0
    } else if (exponent >= 113 && exponent <= 142) {
      // A normal float16 (2⁻¹⁴ ≤ |x| < 2¹⁶): exact only if the 13 bits float16 drops are zero.
      if (mantissa & 0x1fff) return undefined;
      out[i] = sign | ((exponent - 112) << 10) | (mantissa >>> 13);
    } else if (exponent < 113 && Math.abs(values[i]) < HALF_MIN_NORMAL) {
      // float16 subnormal (or flushed to zero): round to the nearest multiple of 2⁻²⁴.
      out[i] = sign | Math.round(Math.abs(values[i]) * 2 ** 24);
    } else {
      return undefined; // inf, NaN or beyond 65504
    }
  }
  return out;
}

/** float16 bits → float32 values (for reading a half-precision weight back). */
export function fromHalf(half: Uint16Array): Float32Array {
  const out = new Float32Array(half.length);
  for (let i = 0; i < half.length; i++) {
    const h = half[i];
    const exponent = (h >>> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    const magnitude = exponent === 0 ? mantissa * 2 ** -24 : (1 + mantissa / 1024) * 2 ** (exponent - 15);
    out[i] = h & 0x8000 ? -magnitude : magnitude;
  }
  return out;
}

export class GraphBuilder {
  private readonly nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  private readonly inputs: InstanceType<typeof onnx.ValueInfoProto>[] = [];
  private readonly outputs: InstanceType<typeof onnx.ValueInfoProto>[] = [];
  private readonly constants: InstanceType<typeof onnx.TensorProto>[] = [];
  private readonly weights: PendingWeight[] = [];
  private readonly outputNames = new Set<string>();
  private counter = 0;
  private usesContribOps = false;
  /** The hook points given an edit slot (graph/hooks.ts), in order: slot i reads row i of its inputs. */
  readonly editSlots: string[] = [];
  /** Small constants already made, by type, dims and values (`constant`). */
  private readonly constantNames = new Map<string, string>();
  /** While a branch is being built (`subgraph`), the builder its nodes go to. */
  private redirect?: GraphBuilder;
  /** Weights this graph has declared as inputs already (by name), with the tensor its nodes read. */
  private readonly declared = new Map<string, string>();

  /**
   * @param shared The model's weights as inputs (see the file's comment); without it, weights are initializers.
   * @param sharedAsInitializers Take the values from `shared` (computing only those it lacks) but make them this
   *   graph's initializers: its session copies them once, and its runs feed nothing (a model's main graph on WASM).
   */
  constructor(
    private readonly shared?: WeightInputs,
    private readonly sharedAsInitializers = false,
    /** The graph a branch (`subgraph`) belongs to: names come from its counter, so no name is made twice. */
    private readonly parent?: GraphBuilder
  ) {}

  /** A fresh tensor name, readable in a graph viewer: `prefix/3`. */
  name(prefix: string): string {
    if (this.parent) return this.parent.name(prefix);
    return `${prefix}/${this.counter++}`;
  }

  /**
   * A branch of an `If`: the nodes `build` adds to this builder go into a graph of their own, which reads this
   * graph's tensors by name (outer scope), its constants and weights too (they stay in this, the outermost graph);
   * `build` returns the tensors it outputs, with their element types. The architecture's own functions (a final
   * norm, an unembedding) can build inside a branch unchanged.
   */
  subgraph(name: string, build: () => [string, number][]): Subgraph {
    const branch = new GraphBuilder(undefined, false, this);
    const outer = this.redirect;
    this.redirect = branch;
    let outputs;
    try {
      outputs = build().map(([tensor, elemType]) => {
        // A branch output must be made inside the branch: an outer tensor or a constant passes through an Identity.
        const inside = branch.nodes.some((node) => node.output.includes(tensor));
        return valueInfo(inside ? tensor : this.op("Identity", [tensor]), elemType);
      });
    } finally {
      this.redirect = outer;
    }
    if (branch.usesContribOps) this.usesContribOps = true;
    return {
      graph: onnx.GraphProto.create({
        name,
        node: branch.nodes,
        input: [],
        output: outputs
      })
    };
  }

  /** A graph input; without `dims`, of any shape (an edit's value: a number, a vector or a whole tensor). */
  input(name: string, elemType: number, dims?: Dim[]): string {
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  /**
   * Make `tensor` a graph output called `name`, and return the name to use for it from now on. A tensor that
   * the last node just made, and that nothing has used yet, is simply renamed; otherwise (an alias of another
   * output, say) an Identity node copies it.
   */
  output(name: string, tensor: string, elemType: number = FLOAT, dims?: Dim[]): string {
    if (this.outputNames.has(name)) throw new Error(`graph output ${name} defined twice`);
    this.outputNames.add(name);
    const last = this.nodes[this.nodes.length - 1];
    if (tensor !== name) {
      const renamable = last?.output.length === 1 && last.output[0] === tensor && !this.outputNames.has(tensor);
      if (renamable) last.output[0] = name;
      else this.op("Identity", [tensor], {}, name);
    }
    this.outputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  /** Whether a node already reads `tensor`: an edit there would come too late for that reader. */
  isRead(tensor: string): boolean {
    return this.nodes.some((node) => node.input.includes(tensor));
  }

  /**
   * A float32 weight: a graph input fed from the model's `WeightInputs`, or an initializer stored as external
   * data. `data` may be a function that computes the values (a transpose, say): with shared inputs it runs only
   * in the first graph that names the weight.
   */
  weight(name: string, data: Float32Array | (() => Float32Array), dims: number[]): string {
    if (!this.shared) {
      // A function runs when the weight's bytes are read (`ExternalFile.lazy`), not now.
      if (typeof data !== "function") checkNumel(name, data.length, dims);
      this.weights.push({name, dims, data});
      return name;
    }
    const declared = this.declared.get(name);
    if (declared) return declared;
    const taken = this.shared.take(name, data, dims);
    let tensor: string;
    if (this.sharedAsInitializers) {
      // float16 initializers are widened when the session is made (constant folding): its copy is float32.
      const stored = taken.data instanceof Uint16Array ? `${name}.fp16` : name;
      this.weights.push({name: stored, dims, data: taken.data});
      tensor = taken.data instanceof Uint16Array ? this.op("Cast", [stored], {to: FLOAT}, name) : name;
    } else if (taken.data instanceof Uint16Array) {
      // Stored at 2 bytes, widened here: activations and every output stay float32. As an input it is never
      // constant-folded, so onnxruntime holds no widened copy between runs.
      this.input(`${name}.fp16`, FLOAT16, dims);
      tensor = this.op("Cast", [`${name}.fp16`], {to: FLOAT}, name);
    } else {
      tensor = this.input(name, FLOAT, dims);
    }
    this.declared.set(name, tensor);
    return tensor;
  }

  /** A small constant, stored in the protobuf. */
  constant(
    values: number[] | Float32Array | Int32Array,
    dims: number[] = [values.length],
    elemType: number = FLOAT,
    prefix = "const"
  ): string {
    // One initializer per small value, in this (the outermost) graph: a branch reads it from the outer scope, so an
    // `If` (the logit lens's switch, graph/hooks.ts) adds no constants of its own — edit slots that were `If`s once
    // had 23,600 of them on SmolLM2-135M, which onnxruntime made one by one for each branch when making the session.
    const key = values.length <= 64 ? `${elemType}|${dims}|${Array.from(values)}` : undefined;
    const known = key && this.constantNames.get(key);
    if (known) return known;
    const name = this.name(prefix);
    if (key) this.constantNames.set(key, name);
    const rawData =
      elemType === INT64
        ? new Uint8Array(BigInt64Array.from(Array.from(values, (v) => BigInt(v))).buffer)
        : elemType === INT32
          ? new Uint8Array(Int32Array.from(values).buffer)
          : new Uint8Array(Float32Array.from(values).buffer);
    this.constants.push(onnx.TensorProto.create({name, dims, dataType: elemType, rawData}));
    return name;
  }

  ints(values: number[]): string {
    return this.constant(values, [values.length], INT64, "ints");
  }

  scalar(value: number): string {
    return this.constant([value], [], FLOAT, "scalar");
  }

  /** Add a node; returns the name of its (first) output. `out` names the output (a hook point), else one is made. */
  op(opType: string, inputs: string[], attributes: Record<string, Attribute> = {}, out?: string): string {
    return this.opN(opType, inputs, 1, attributes, out ? [out] : undefined)[0];
  }

  opN(
    opType: string,
    inputs: string[],
    count: number,
    attributes: Record<string, Attribute> = {},
    outs?: string[]
  ): string[] {
    if (this.redirect) return this.redirect.opN(opType, inputs, count, attributes, outs);
    // "com.microsoft.GroupQueryAttention": an onnxruntime contrib op, in its own domain.
    const domain = opType.startsWith(`${MS_DOMAIN}.`) ? MS_DOMAIN : "";
    if (domain) ((opType = opType.slice(MS_DOMAIN.length + 1)), (this.usesContribOps = true));
    const output = outs ?? Array.from({length: count}, () => this.name(opType));
    const attribute = Object.entries(attributes).map(([name, value]) => attributeProto(name, value));
    this.nodes.push(onnx.NodeProto.create({opType, domain, input: inputs, output, attribute, name: this.name(opType)}));
    return output;
  }

  build(graphName: string): EncodedModel {
    // Each weight is its own external-data "file", handed to onnxruntime as the very bytes of its
    // Float32Array: no second copy is made here.
    const externalData = this.weights.map((w, i) => externalFile(`weight-${i}.bin`, w));
    const initializer = [
      ...this.constants,
      ...this.weights.map((w, i) =>
        onnx.TensorProto.create({
          name: w.name,
          dims: w.dims,
          dataType: w.data instanceof Uint16Array ? FLOAT16 : FLOAT,
          dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
          externalData: [
            {key: "location", value: externalData[i].path},
            {key: "offset", value: "0"},
            {key: "length", value: String(externalData[i].lazy?.byteLength ?? externalData[i].data.byteLength)}
          ]
        })
      )
    ];
    const graph = onnx.GraphProto.create({
      name: graphName,
      node: this.nodes,
      input: this.inputs,
      output: this.outputs,
      initializer
    });
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: "lm-workbench",
      opsetImport: [{domain: "", version: OPSET}, ...(this.usesContribOps ? [{domain: MS_DOMAIN, version: 1}] : [])],
      graph
    });
    return {model: onnx.ModelProto.encode(model).finish(), externalData, editSlots: this.editSlots};
  }
}

/** A weight's external-data file: its array's own bytes, or (given as a function) bytes made when read. */
function externalFile(path: string, w: PendingWeight): ExternalFile {
  const {name, dims, data} = w;
  const bytesOf = (a: Float32Array | Uint16Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (typeof data !== "function") return {path, data: bytesOf(data)};
  const make = () => {
    const values = data();
    checkNumel(name, values.length, dims);
    return bytesOf(values);
  };
  // Read through `data`, the bytes are made once and kept (a checkpoint hands each tensor over only once).
  let made: Uint8Array | undefined;
  return {
    path,
    get data() {
      return (made ??= make());
    },
    lazy: {byteLength: 4 * numel(dims), make}
  };
}

function valueInfo(name: string, elemType: number, dims?: Dim[]) {
  const shape = dims && {dim: dims.map((d) => (typeof d === "number" ? {dimValue: d} : {dimParam: d}))};
  return onnx.ValueInfoProto.create({name, type: {tensorType: {elemType, shape}}});
}

/** Attributes that ONNX types as floats even when their value is a whole number. */
const FLOAT_ATTRIBUTES = new Set(["epsilon", "alpha", "beta", "gamma", "scale", "softcap"]);

function attributeProto(name: string, value: Attribute) {
  const {AttributeType} = onnx.AttributeProto;
  if (typeof value === "object" && !Array.isArray(value)) return {name, type: AttributeType.GRAPH, g: value.graph};
  if (typeof value === "string") return {name, type: AttributeType.STRING, s: new TextEncoder().encode(value)};
  if (Array.isArray(value)) return {name, type: AttributeType.INTS, ints: value};
  if (Number.isInteger(value) && !FLOAT_ATTRIBUTES.has(name)) return {name, type: AttributeType.INT, i: value};
  return {name, type: AttributeType.FLOAT, f: value};
}
