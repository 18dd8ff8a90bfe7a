import {readFileSync} from "node:fs";
import {describe, expect, it} from "vitest";
import {WorkbenchError} from "../src/errors.js";
import {parseHeader, toFloat32} from "../src/hub/safetensors.js";
import type {TensorInfo} from "../src/hub/safetensors.js";
import {encodeRaw, encodeSafetensors} from "./helpers/hub-server.js";

const fixture = (name: string) => new Uint8Array(readFileSync(`test/fixtures/${name}/model.safetensors`));

function tensorBytes(file: Uint8Array, info: TensorInfo): Uint8Array {
  return file.subarray(info.begin, info.end);
}

function expectError(run: () => unknown, ...parts: (string | RegExp)[]) {
  let error: unknown;
  try {
    run();
  } catch (caught) {
    error = caught;
  }
  expect(error).toBeInstanceOf(WorkbenchError);
  for (const part of parts) expect((error as Error).message).toMatch(part);
}

describe("real fixtures", () => {
  it("reads mini-gpt2's F32 header and tensors", () => {
    const file = fixture("mini-gpt2");
    const {tensors, dataOffset} = parseHeader(file, "model.safetensors", file.length);
    const wte = tensors.get("wte.weight")!;
    expect(wte).toMatchObject({dtype: "F32", shape: [512, 32], file: "model.safetensors"});
    expect(wte.end - wte.begin).toBe(512 * 32 * 4);
    // Where the header's data_offsets put it, counted from the end of the header.
    const headerLength = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + headerLength)));
    expect(dataOffset).toBe(8 + headerLength);
    expect([wte.begin, wte.end]).toEqual(header["wte.weight"].data_offsets.map((o: number) => dataOffset + o));
    expect(tensors.has("h.0.attn.bias")).toBe(true);
    expect(tensors.has("lm_head.weight")).toBe(false);

    const values = toFloat32(wte, tensorBytes(file, wte));
    const view = new DataView(file.buffer, file.byteOffset + wte.begin);
    expect(values.length).toBe(512 * 32);
    for (const i of [0, 1, 31, 12345 % values.length, values.length - 1])
      expect(values[i]).toBe(view.getFloat32(4 * i, true));
  });

  it("converts mini-llama's BF16 tensors exactly", () => {
    const file = fixture("mini-llama");
    const {tensors} = parseHeader(file, "model.safetensors", file.length);
    const info = tensors.get("model.layers.0.mlp.down_proj.weight")!;
    expect(info).toMatchObject({dtype: "BF16", shape: [32, 64]});

    const values = toFloat32(info, tensorBytes(file, info));
    // By hand: a bfloat16 is the upper 16 bits of a float32.
    const raw = tensorBytes(file, info);
    const hand = new Float32Array(32 * 64);
    const bits = new Uint32Array(hand.buffer);
    for (let i = 0; i < hand.length; i++) bits[i] = (raw[2 * i] | (raw[2 * i + 1] << 8)) << 16;
    expect(values).toEqual(hand);
    expect(values.some((v) => v !== 0)).toBe(true);
  });
});

describe("F16", () => {
  it("converts normals, subnormals, zeros, infinities and NaN", () => {
    const halves = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x3555];
    const expected = [1, -2, 0.5, 65504, 2 ** -24, 0, -0, Infinity, -Infinity, NaN, 0.333251953125];
    const data = new Uint8Array(new Uint16Array(halves).buffer);
    const file = encodeSafetensors([{name: "h", dtype: "F16", shape: [halves.length], bytes: data}]);
    const info = parseHeader(file, "half.safetensors").tensors.get("h")!;
    expect(Array.from(toFloat32(info, tensorBytes(file, info)))).toEqual(expected);
  });

  it("reads a tensor at an odd byte offset", () => {
    const a = new Uint8Array([7]);
    const b = new Uint8Array(new Float32Array([1.5, -3]).buffer);
    const file = encodeSafetensors([
      {name: "a", dtype: "U8", shape: [1], bytes: a},
      {name: "b", dtype: "F32", shape: [2], bytes: b}
    ]);
    const info = parseHeader(file, "odd.safetensors").tensors.get("b")!;
    expect(info.begin % 4).not.toBe(0);
    expect(Array.from(toFloat32(info, tensorBytes(file, info)))).toEqual([1.5, -3]);
  });
});

describe("bad input", () => {
  const F32 = (n: number) => new Uint8Array(4 * n);

  it("truncated file", () => {
    expectError(() => parseHeader(new Uint8Array(5), "short.safetensors"), "short.safetensors", /truncated/);
    const whole = encodeSafetensors([{name: "w", dtype: "F32", shape: [2], bytes: F32(2)}]);
    expectError(() => parseHeader(whole.subarray(0, 20), "cut.safetensors"), "cut.safetensors", /truncated header/);
  });

  it("corrupt header JSON", () => {
    expectError(
      () => parseHeader(encodeRaw('{"w": {"dtype": "F32",'), "bad.safetensors"),
      "bad.safetensors",
      /not valid JSON/
    );
  });

  it("oversized header length", () => {
    const file = encodeRaw("{}", [], 2 ** 40);
    expectError(() => parseHeader(file, "huge.safetensors"), "huge.safetensors", /corrupt or oversized header/);
    const beyond = encodeRaw("{}", [], 4096);
    expectError(
      () => parseHeader(beyond, "beyond.safetensors", beyond.length),
      "beyond.safetensors",
      /corrupt or oversized/
    );
  });

  it("unknown dtype, and a known dtype that cannot be converted", () => {
    const unknown = encodeRaw(JSON.stringify({w: {dtype: "Q4", shape: [2], data_offsets: [0, 1]}}), [
      new Uint8Array(1)
    ]);
    expectError(() => parseHeader(unknown, "q.safetensors"), "tensor w in q.safetensors", /unknown dtype Q4/);

    const ints = encodeSafetensors([{name: "ids", dtype: "I64", shape: [2], bytes: new Uint8Array(16)}]);
    const info = parseHeader(ints, "ints.safetensors").tensors.get("ids")!;
    expectError(
      () => toFloat32(info, tensorBytes(ints, info)),
      "unsupported dtype I64 for tensor ids in ints.safetensors"
    );
  });

  it("offsets out of bounds", () => {
    const text = JSON.stringify({w: {dtype: "F32", shape: [4], data_offsets: [0, 16]}});
    const file = encodeRaw(text, [F32(2)]);
    expectError(
      () => parseHeader(file, "oob.safetensors", file.length),
      "tensor w in oob.safetensors",
      new RegExp(`offsets \\[\\d+, \\d+\\) out of bounds \\(file has ${file.length} bytes\\)`)
    );
  });

  it("byte length disagreeing with the shape", () => {
    const text = JSON.stringify({w: {dtype: "BF16", shape: [3, 2], data_offsets: [0, 8]}});
    expectError(
      () => parseHeader(encodeRaw(text, [new Uint8Array(8)]), "len.safetensors"),
      "tensor w in len.safetensors",
      /8 bytes .* needs 12/
    );
  });

  it("entries missing fields", () => {
    const noShape = encodeRaw(JSON.stringify({w: {dtype: "F32", data_offsets: [0, 4]}}), [F32(1)]);
    expectError(() => parseHeader(noShape, "ns.safetensors"), "tensor w in ns.safetensors", /shape/);
    const noOffsets = encodeRaw(JSON.stringify({w: {dtype: "F32", shape: [1]}}), [F32(1)]);
    expectError(() => parseHeader(noOffsets, "no.safetensors"), "tensor w in no.safetensors", /data_offsets/);
    const noDtype = encodeRaw(JSON.stringify({w: {shape: [1], data_offsets: [0, 4]}}), [F32(1)]);
    expectError(() => parseHeader(noDtype, "nd.safetensors"), "tensor w in nd.safetensors", /dtype/);
  });

  it("keeps __metadata__ out of the tensors", () => {
    const file = encodeSafetensors([{name: "w", dtype: "F32", shape: [1], bytes: F32(1)}], {format: "pt"});
    const {tensors, metadata} = parseHeader(file, "m.safetensors", file.length);
    expect([...tensors.keys()]).toEqual(["w"]);
    expect(metadata).toEqual({format: "pt"});
  });
});
