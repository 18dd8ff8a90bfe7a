/**
 * A small builder for ONNX graphs, encoded with onnx-proto (protobufjs).
 *
 * The architectures in `src/arch/` describe a forward pass as calls on a `GraphBuilder`: `g.op("MatMul", [x, w])`
 * returns the name of the new tensor. Weights are kept out of the protobuf: each is an external-data file
 * whose bytes are its Float32Array, handed to onnxruntime through the `externalData` session option. The
 * protobuf stays small, no model is limited by protobuf's 2 GB, and no weight is copied on the way.
 */
import onnxProto from "onnx-proto";

const {onnx} = onnxProto;

export const OPSET = 17;
/** onnxruntime's contrib ops (fused norms, attention with rotary and a key/value cache): `com.microsoft.<Op>`. */
export const MS_DOMAIN = "com.microsoft";

export const FLOAT = onnx.TensorProto.DataType.FLOAT;
export const INT64 = onnx.TensorProto.DataType.INT64;
export const BOOL = onnx.TensorProto.DataType.BOOL;
export const INT32 = onnx.TensorProto.DataType.INT32;

export type Attribute = number | number[] | string;
export type Dim = number | string;

export interface EncodedModel {
  /** The ModelProto bytes, without weights. */
  model: Uint8Array;
  /** The weights, as onnxruntime's `externalData` session option takes them. */
  externalData: {path: string; data: Uint8Array}[];
}

interface PendingWeight {
  name: string;
  dims: number[];
  data: Float32Array;
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

  /** A fresh tensor name, readable in a graph viewer: `prefix/3`. */
  name(prefix: string): string {
    return `${prefix}/${this.counter++}`;
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

  /** A float32 weight, stored as external data. */
  weight(name: string, data: Float32Array, dims: number[]): string {
    const numel = dims.reduce((a, b) => a * b, 1);
    if (numel !== data.length) throw new Error(`weight ${name}: ${data.length} values for shape [${dims}]`);
    this.weights.push({name, dims, data});
    return name;
  }

  /** A small constant, stored in the protobuf. */
  constant(
    values: number[] | Float32Array | Int32Array,
    dims: number[] = [values.length],
    elemType: number = FLOAT,
    prefix = "const"
  ): string {
    const name = this.name(prefix);
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
    const externalData = this.weights.map((w, i) => ({
      path: `weight-${i}.bin`,
      data: new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength)
    }));
    const initializer = [
      ...this.constants,
      ...this.weights.map((w, i) =>
        onnx.TensorProto.create({
          name: w.name,
          dims: w.dims,
          dataType: FLOAT,
          dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
          externalData: [
            {key: "location", value: externalData[i].path},
            {key: "offset", value: "0"},
            {key: "length", value: String(w.data.byteLength)}
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
    return {model: onnx.ModelProto.encode(model).finish(), externalData};
  }
}

function valueInfo(name: string, elemType: number, dims?: Dim[]) {
  const shape = dims && {dim: dims.map((d) => (typeof d === "number" ? {dimValue: d} : {dimParam: d}))};
  return onnx.ValueInfoProto.create({name, type: {tensorType: {elemType, shape}}});
}

/** Attributes that ONNX types as floats even when their value is a whole number. */
const FLOAT_ATTRIBUTES = new Set(["epsilon", "alpha", "beta", "gamma", "scale", "softcap"]);

function attributeProto(name: string, value: Attribute) {
  const {AttributeType} = onnx.AttributeProto;
  if (typeof value === "string") return {name, type: AttributeType.STRING, s: new TextEncoder().encode(value)};
  if (Array.isArray(value)) return {name, type: AttributeType.INTS, ints: value};
  if (Number.isInteger(value) && !FLOAT_ATTRIBUTES.has(name)) return {name, type: AttributeType.INT, i: value};
  return {name, type: AttributeType.FLOAT, f: value};
}
