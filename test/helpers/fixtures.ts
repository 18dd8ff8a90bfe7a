/** Reading the parity fixtures in test/fixtures (see its README.md): reference.json and the reference tensors. */
import {copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync} from "node:fs";
import os from "node:os";
import path from "node:path";
import {expect} from "vitest";
import {parseHeader, toFloat32} from "../../src/hub/safetensors.js";
import {architectureFor, normalizeConfig} from "../../src/arch/index.js";
import type {GraphOptions} from "../../src/graph/hooks.js";

/** The fixtures folder, also the tests' model folder (vitest.config.ts sets LMW_MODELS to it). */
export const FIXTURES_DIR = path.resolve("test/fixtures");

/** The fixtures' tolerances (fixtures/README.md): relative to the tensor's largest magnitude; absolute for attention weights and probabilities. */
export const RELATIVE = 1e-4;
export const ABSOLUTE = 1e-5;
/** The fixtures and their families: the one list every test and the GPU bench take. */
export {FIXTURES, FIXTURE_FAMILIES, ONE_PER_FAMILY, type FixtureName} from "./fixture-list.js";
export const fixtureDir = (name: string) => path.join(FIXTURES_DIR, name);

/** A fixture's architecture, from its config.json, and its graph built with `options` over zero weights. */
export function fixtureGraph(name: string, options: GraphOptions) {
  const config = JSON.parse(readFileSync(path.join(fixtureDir(name), "config.json"), "utf8"));
  const arch = architectureFor(normalizeConfig(config));
  const numel = new Map(arch.parameters().map((p) => [p.name, p.numel]));
  return {arch, build: () => arch.buildGraph((n) => new Float32Array(numel.get(n)!), options)};
}

/**
 * A copy of a fixture (weights and tokenizer) with its config.json changed; `folder`: another model folder to copy,
 * such as data/models' SmolLM2-135M, which has no weights (its copy then loads with random ones).
 */
export function variant(
  name: string,
  change: (config: Record<string, unknown>) => Record<string, unknown>,
  folder = fixtureDir(name)
): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `lmw-${name}-`));
  const fixture = folder === fixtureDir(name);
  for (const f of ["model.safetensors", "tokenizer.json", "tokenizer_config.json"])
    if (fixture || existsSync(path.join(folder, f))) copyFileSync(path.join(folder, f), path.join(dir, f));
  const config = JSON.parse(readFileSync(path.join(folder, "config.json"), "utf8"));
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(change(config)));
  return dir;
}

export interface ReferencePrompt {
  index: number;
  text: string;
  input_ids: number[];
  tokens: string[];
  last_top10: {id: number; prob: number; decoded: string}[];
  captured: string[];
}

export interface Reference {
  prompts: ReferencePrompt[];
  generations: {
    text: string;
    input_ids: number[];
    new_ids: number[];
    min_top2_logit_margin: number;
    generated_text: string;
  }[];
  parameters: {name: string; shape: number[]; numel: number}[];
  num_parameters: number;
  /** `print(model)` in transformers 4.57. */
  module_tree_4: string;
}

export function readReference(name: string): {
  json: Reference;
  tensor(key: string): {shape: number[]; data: Float32Array};
  has(key: string): boolean;
} {
  const json = JSON.parse(readFileSync(path.join(fixtureDir(name), "reference.json"), "utf8")) as Reference;
  const bytes = new Uint8Array(readFileSync(path.join(fixtureDir(name), "reference.safetensors")));
  const header = parseHeader(bytes, "reference.safetensors", bytes.length);
  return {
    json,
    has: (key) => header.tensors.has(key),
    tensor(key) {
      const info = header.tensors.get(key);
      if (!info) throw new Error(`reference.safetensors of ${name} has no ${key}`);
      return {shape: info.shape, data: toFloat32(info, bytes.subarray(info.begin, info.end))};
    }
  };
}

/** The largest absolute difference, relative to the reference's largest magnitude. */
export function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) return Infinity;
  let scale = 0,
    err = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    err = Math.max(err, Math.abs(got[i] - want[i]));
  }
  return err / (scale || 1);
}

export function absoluteError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) return Infinity;
  let err = 0;
  for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
  return err;
}

/** A traced hook point against its reference: PyTorch's shape with the batch dimension, and the tolerance for its kind. */
export function expectHookMatches(
  hook: string,
  got: {shape: number[]; data: Float32Array},
  want: {shape: number[]; data: Float32Array}
): void {
  expect(got.shape, hook).toEqual([1, ...want.shape]);
  if (hook.endsWith("attn_weights")) expect(absoluteError(got.data, want.data), hook).toBeLessThan(ABSOLUTE);
  else expect(relativeError(got.data, want.data), hook).toBeLessThan(RELATIVE);
}
