/**
 * The weights of a model, whether in one `model.safetensors` or sharded behind
 * `model.safetensors.index.json`. Opening reads the headers only; tensors are read when asked for.
 */
import {WorkbenchError} from "../errors.js";
import {headerLength, parseHeader, toFloat32} from "./safetensors.js";
import type {TensorInfo} from "./safetensors.js";
import {readJson} from "./source.js";
import type {ModelSource, Progress, ReadOptions} from "./source.js";

export interface Checkpoint {
  /** ["model.safetensors"] or the shards. */
  files: string[];
  /** Every tensor, from the headers. */
  tensors: Map<string, TensorInfo>;
  /** One tensor, read on its own (a Range request over HTTP). */
  load(name: string, opts?: ReadOptions): Promise<Float32Array>;
  /**
   * Every tensor (or only those in `names`), reading each file once; progress counts bytes over all files.
   * Tensors left out are not converted: a checkpoint's BOOL or 0-d buffers need not be floats.
   */
  loadAll(opts?: ReadOptions, names?: ReadonlySet<string>): Promise<Map<string, Float32Array>>;
}

const SINGLE_FILE = "model.safetensors";
const INDEX_FILE = "model.safetensors.index.json";
/** The first read of a file takes this much, which holds the whole header of any usual checkpoint. */
const HEADER_GUESS_BYTES = 1 << 20;

/** The checkpoint of a source, or undefined when the source has no weights. */
export async function openCheckpoint(source: ModelSource, opts: ReadOptions = {}): Promise<Checkpoint | undefined> {
  let files: string[];
  let weightMap: Record<string, string> | undefined;
  if (await source.has(SINGLE_FILE)) {
    files = [SINGLE_FILE];
  } else if (await source.has(INDEX_FILE)) {
    weightMap = await readWeightMap(source, opts);
    files = [...new Set(Object.values(weightMap))];
  } else {
    return undefined;
  }

  const tensors = new Map<string, TensorInfo>();
  const fileSizes = new Map<string, number>();
  for (const file of files) {
    const {header, fileSize} = await readHeader(source, file, weightMap !== undefined, opts);
    fileSizes.set(file, fileSize ?? Math.max(header.dataOffset, ...[...header.tensors.values()].map((t) => t.end)));
    for (const [name, info] of header.tensors) tensors.set(name, info);
  }
  if (weightMap) checkWeightMap(weightMap, tensors, source);

  return {
    files,
    tensors,

    async load(name, loadOpts = {}) {
      const info = tensors.get(name);
      if (!info) throw new WorkbenchError(`${source.id}: no tensor ${name} in ${files.join(", ")}`);
      const bytes = await source.readRange(info.file, info.begin, info.end, loadOpts);
      return toFloat32(info, bytes);
    },

    async loadAll(loadOpts = {}, names) {
      const total = files.reduce((sum, file) => sum + (fileSizes.get(file) ?? 0), 0);
      const result = new Map<string, Float32Array>();
      let done = 0;
      for (const file of files) {
        const report = loadOpts.onProgress;
        const onProgress = report && ((p: Progress) => report({file, loaded: done + p.loaded, total}));
        const bytes = await source.read(file, {signal: loadOpts.signal, onProgress});
        done += bytes.length;
        for (const info of tensors.values()) {
          if (info.file === file && (!names || names.has(info.name)))
            result.set(info.name, toFloat32(info, checkedSlice(bytes, info, source)));
        }
      }
      return result;
    }
  };
}

async function readWeightMap(source: ModelSource, opts: ReadOptions): Promise<Record<string, string>> {
  const index = await readJson<{weight_map?: unknown}>(source, INDEX_FILE, {signal: opts.signal});
  const map = index?.weight_map;
  if (typeof map !== "object" || map === null || Object.values(map).some((file) => typeof file !== "string")) {
    throw new WorkbenchError(`${source.id}/${INDEX_FILE}: weight_map must map tensor names to file names`);
  }
  if (Object.keys(map).length === 0)
    throw new WorkbenchError(
      `${source.id}/${INDEX_FILE}: weight_map is empty, so the index names no weights: the file is damaged or not this model's (fetch it again)`
    );
  return map as Record<string, string>;
}

/** Every tensor the index names must be in the shard it names. */
function checkWeightMap(weightMap: Record<string, string>, tensors: Map<string, TensorInfo>, source: ModelSource) {
  for (const [name, file] of Object.entries(weightMap)) {
    const info = tensors.get(name);
    if (!info || info.file !== file) {
      throw new WorkbenchError(
        `${source.id}/${INDEX_FILE}: weight_map puts tensor ${name} in ${file}, whose header lacks it`
      );
    }
  }
}

/** The header of one file: one read of its first MiB, and a second only when the header is longer. */
async function readHeader(source: ModelSource, file: string, isShard: boolean, opts: ReadOptions) {
  try {
    let bytes = await source.readRange(file, 0, HEADER_GUESS_BYTES, {signal: opts.signal});
    const fileEnded = bytes.length < HEADER_GUESS_BYTES;
    const fileSize = fileEnded ? bytes.length : await source.size(file);
    const needed = 8 + headerLength(bytes, file, fileSize);
    if (needed > bytes.length && !fileEnded) bytes = await source.readRange(file, 0, needed, {signal: opts.signal});
    return {header: parseHeader(bytes, file, fileSize), fileSize};
  } catch (error) {
    if (isShard && !opts.signal?.aborted && !(await source.has(file))) {
      throw new WorkbenchError(
        `${source.id}/${INDEX_FILE}: weight_map names shard ${file}, which is missing from ${source.location}`,
        {cause: error}
      );
    }
    throw error;
  }
}

function checkedSlice(bytes: Uint8Array, info: TensorInfo, source: ModelSource): Uint8Array {
  if (info.end > bytes.length) {
    throw new WorkbenchError(
      `${source.id}/${info.file}: tensor ${info.name} ends at byte ${info.end}, but the file has ${bytes.length}`
    );
  }
  return bytes.subarray(info.begin, info.end);
}
