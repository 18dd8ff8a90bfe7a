/**
 * Steering by activation addition (Turner et al., 2023, "ActAdd"): the difference between one hook's value at
 * the last token of two prompts, added (times alpha) to that hook at every position while generating.
 */
import type {Model} from "../runtime/model.js";
import type {GenerateOptions, Generation} from "../runtime/generate.js";
import type {Edit} from "../runtime/edits.js";
import {STEERING, checkOption} from "../defaults.js";

/** `hook(from)[last] - hook(to)[last]`, a vector as wide as the hook's last axis. */
export async function steeringVector(
  model: Model,
  hook: string,
  from: string | number[],
  to: string | number[]
): Promise<Float32Array> {
  const a = (await model.trace(from, [hook]))[hook];
  const b = (await model.trace(to, [hook]))[hook];
  const d = a.shape[a.shape.length - 1];
  const last = (t: {data: Float32Array}) => t.data.subarray(t.data.length - d);
  const [x, y] = [last(a), last(b)];
  return Float32Array.from(x, (v, i) => v - y[i]);
}

/** The edit that adds `alpha × vector` to `hook` at every position (alpha: any finite number). */
export function steeringEdit(
  hook: string,
  vector: ArrayLike<number>,
  alpha: number,
  name = "alpha" // as the caller spells the option: the CLI's "--alpha"
): Edit {
  const a = checkOption(STEERING.alpha, alpha, name);
  return {hook, op: "add", value: Float32Array.from(vector, (v) => a * v)};
}

export interface SteerOptions extends GenerateOptions {
  hook: string;
  from: string | number[];
  to: string | number[];
  alpha: number;
}

/** Generate from `prompt` with the steering vector from `from` and `to` added at `hook`. */
export async function steer(
  model: Model,
  prompt: string | number[],
  options: SteerOptions
): Promise<Generation & {vector: Float32Array}> {
  const {hook, from, to, alpha, edits = [], ...rest} = options;
  const vector = await steeringVector(model, hook, from, to);
  const generation = await model.generate(prompt, {...rest, edits: [...edits, steeringEdit(hook, vector, alpha)]});
  return {...generation, vector};
}
