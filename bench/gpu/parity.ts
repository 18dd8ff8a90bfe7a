/**
 * Every family's mini fixture on a real GPU: onnxruntime-web's WebGPU on Dawn (the JSEP build and the native EP), every
 * captured hook point and the last logits of every prompt against the float64 references, and a greedy generation
 * with the key/value cache kept on the GPU; then the native EP once more with the decode step captured and replayed.
 * test/webgpu-node.test.ts and test/lean-decode.test.ts do the same on SwiftShader; this runs where the vitest suite
 * cannot: on the GPU machine, from bench/gpu/pack.sh's bundle (`LMW_GPU_PARITY=1 bash .gpu/run.sh`).
 */
import {readFileSync} from "node:fs";
import path from "node:path";
import {loadModel} from "../../src/node.js";
import {parseHeader, toFloat32} from "../../src/hub/safetensors.js";
import {FIXTURES} from "../../test/helpers/fixture-list.js";

const MODELS = process.env.LMW_MODELS!;
// encodeTimeoutMs 0: prompts are tokenized on this thread. The tokenizer's worker thread (src/hub/node.ts) loads
// @huggingface/tokenizers from node_modules, which the GPU bundle does not carry.
let failures = 0;
for (const runtime of ["webgpu", "webgpu-native"] as const) {
  for (const name of FIXTURES) {
    const dir = path.join(MODELS, name);
    const ref = JSON.parse(readFileSync(path.join(dir, "reference.json"), "utf8"));
    const bytes = new Uint8Array(readFileSync(path.join(dir, "reference.safetensors")));
    const header = parseHeader(bytes, "reference.safetensors", bytes.length);
    const tensor = (k: string) => {
      const i = header.tensors.get(k)!;
      return toFloat32(i, bytes.subarray(i.begin, i.end));
    };
    const t0 = Date.now();
    const model = await loadModel(name, {runtime, encodeTimeoutMs: 0});
    let rel = 0,
      abs = 0,
      worst = "";
    for (const p of ref.prompts) {
      const got = (await model.trace(p.text, [...p.captured, "lm_head.output"])) as any;
      for (const h of [...p.captured, "logits.last"]) {
        const want = h === "logits.last" ? tensor(`p${p.index}.logits.last`) : tensor(`p${p.index}.${h}`);
        const data: Float32Array =
          h === "logits.last"
            ? got["lm_head.output"].data.subarray(got["lm_head.output"].data.length - want.length)
            : got[h].data;
        let scale = 0,
          err = 0;
        for (let i = 0; i < want.length; i++) {
          scale = Math.max(scale, Math.abs(want[i]));
          err = Math.max(err, Math.abs(data[i] - want[i]));
        }
        if (data.length !== want.length) err = Infinity;
        if (h.endsWith("attn_weights")) abs = Math.max(abs, err);
        else if (err / (scale || 1) > rel) {
          rel = err / (scale || 1);
          worst = h;
        }
      }
    }
    const gen = ref.generations[0];
    const result = await model.generate(gen.text, {maxNewTokens: 20, stopAtEos: false, useCache: true});
    const same = JSON.stringify(result.new_ids) === JSON.stringify(gen.new_ids);
    const ok = rel < 1e-4 && abs < 1e-5 && same;
    if (!ok) failures++;
    console.log(
      `${ok ? "ok  " : "FAIL"} ${runtime.padEnd(13)} ${name.padEnd(12)} worst relative ${rel.toExponential(2)} (${worst}), attention ${abs.toExponential(2)} absolute, cached generation ${same ? "equal" : "DIFFERS"}; ${Date.now() - t0} ms; ${model.backend}`
    );
    await model.dispose();
  }
}
// The native provider again, its decode step captured once and replayed (runtime/decode.ts): the same tokens.
for (const name of FIXTURES) {
  const gen = JSON.parse(readFileSync(path.join(MODELS, name, "reference.json"), "utf8")).generations[0];
  const model = await loadModel(name, {runtime: "webgpu-native", graphCapture: true, encodeTimeoutMs: 0});
  const captured = (await model.leanDecoder())?.captured === true;
  const result = await model.generate(gen.text, {maxNewTokens: 20, stopAtEos: false});
  // Every family's step is captured (Gemma 3's sliding window too, since onnxruntime 1.31.1).
  const same = JSON.stringify(result.new_ids) === JSON.stringify(gen.new_ids) && captured;
  if (!same) failures++;
  console.log(
    `${same ? "ok  " : "FAIL"} ${"captured".padEnd(13)} ${name.padEnd(12)} greedy generation ${same ? "equal" : "DIFFERS"} ` +
      `(${captured ? "each step a replay" : "NOT CAPTURED"})`
  );
  await model.dispose();
}
process.exit(failures ? 1 : 0);
