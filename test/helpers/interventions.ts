/** The intervention references in test/fixtures/{name}/interventions.json + .safetensors (format: test/fixtures/README.md). */
import {readFileSync} from "node:fs";
import path from "node:path";
import {parseHeader, toFloat32} from "../../src/hub/safetensors.js";

import {fixtureDir} from "./fixtures.js";

export interface Case {
  case: string;
  [field: string]: any;
}

export function readInterventions(name: string) {
  const dir = fixtureDir(name);
  const json = JSON.parse(readFileSync(path.join(dir, "interventions.json"), "utf8")) as {
    layers: number;
    heads: number;
    head_dim: number;
    cases: Case[];
  };
  const bytes = new Uint8Array(readFileSync(path.join(dir, "interventions.safetensors")));
  const header = parseHeader(bytes, "interventions.safetensors", bytes.length);
  return {
    json,
    case(name: string): Case {
      const found = json.cases.find((c) => c.case === name);
      if (!found) throw new Error(`interventions.json has no case ${name}`);
      return found;
    },
    tensor(key: string): {shape: number[]; data: Float32Array} {
      const info = header.tensors.get(key);
      if (!info) throw new Error(`interventions.safetensors of ${name} has no ${key}`);
      return {shape: info.shape, data: toFloat32(info, bytes.subarray(info.begin, info.end))};
    }
  };
}
