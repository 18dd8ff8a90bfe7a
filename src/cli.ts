/**
 * The command line: `lm-workbench inspect | tokens | trace | generate MODEL …`. Each command prints a
 * human-readable view by default and JSON on stdout with `--json`. A WorkbenchError (bad input) prints its
 * message on stderr and exits 1; anything else prints its stack too. Progress goes to stderr in human mode only.
 */
import {readFile} from "node:fs/promises";
import {parseArgs, type ParseArgsConfig} from "node:util";
import {stats} from "./analysis/index.js";
import {WorkbenchError} from "./errors.js";
import {resolveSource} from "./hub/node.js";
import {type ModelSource, readJson} from "./hub/source.js";
import {RUNTIMES, loadModel, type LoadOptions, type Runtime} from "./node.js";
import {describeModel} from "./runtime/describe.js";
import {Tokenizer} from "./tokenizer.js";
import {sourceEncoder} from "./tokenizer-worker.js";

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values = Record<string, string | boolean | string[] | undefined>;

interface Command {
  usage: string;
  summary: string;
  options: Options;
  /** Positional arguments, in order (all required). */
  positionals: string[];
  run(args: string[], values: Values, io: IO): Promise<void>;
}

interface IO {
  out(text: string): void;
  err(text: string): void;
  /** Everything on standard input, for TEXT "-" and `--prompt-file -`. */
  stdin?(): Promise<string>;
}

const COMMON: Options = {
  json: {type: "boolean"},
  help: {type: "boolean", short: "h"}
};
/** Where TEXT may come from instead of the command line: a long prompt is better in a file or on stdin. */
const PROMPT: Options = {"prompt-file": {type: "string"}};
const PROMPT_HELP = `  TEXT                the text; "-" reads it from standard input
  --prompt-file FILE  read the text from FILE ("-": standard input) instead of TEXT`;

const LOADING: Options = {
  init: {type: "string"},
  seed: {type: "string"},
  runtime: {type: "string"}
};

const LOAD_HELP = `  --init random       random weights (for a model folder without weights)
  --init checkpoint   the checkpoint's weights (the default)
  --seed N            seed of the random weights (default 0)
  --runtime R         node (onnxruntime-node, default), web (onnxruntime-web's WASM), webgpu or webgpu-native
                      (onnxruntime-web's WebGPU backends on Dawn: needs a Vulkan GPU)`;

const COMMANDS: Record<string, Command> = {
  inspect: {
    usage: `lm-workbench inspect MODEL [--json]

The config, parameters, parameter counts and module tree of MODEL, from config.json and the safetensors
headers only: no weights are read, and a folder without weights works. When a checkpoint exists, its
headers are checked against the parameter list.

  --json              {"config", "parameters", "counts", "moduleTree"} on stdout`,
    summary: "config, parameters, counts and module tree (no weights read)",
    options: COMMON,
    positionals: ["MODEL"],
    run: inspect
  },
  tokens: {
    usage: `lm-workbench tokens MODEL TEXT [--json]

TEXT tokenized by MODEL's tokenizer.

${PROMPT_HELP}
  --json              {"ids", "tokens"} on stdout`,
    summary: "tokenize TEXT",
    options: {...COMMON, ...PROMPT},
    positionals: ["MODEL", "TEXT"],
    run: tokens
  },
  trace: {
    usage: `lm-workbench trace MODEL TEXT --hook PATH [--hook PATH…] [--json] [--init random --seed N] [--runtime node|web|webgpu|webgpu-native]

One forward pass over TEXT, bringing back the tensors at the hook points (e.g. model.layers.1.output,
transformer.h.0.attn.output) or weights named.

${PROMPT_HELP}
  --hook PATH         a hook point or weight name (repeatable)
  --json              {"input_ids", "tokens", "hooks": {PATH: {"shape", "data"}}} on stdout
${LOAD_HELP}`,
    summary: "capture activations at hook points",
    options: {...COMMON, ...LOADING, ...PROMPT, hook: {type: "string", multiple: true}},
    positionals: ["MODEL", "TEXT"],
    run: trace
  },
  generate: {
    usage: `lm-workbench generate MODEL TEXT --max-new-tokens N [--do-sample --temperature T --top-k K --top-p P --seed S] [--json]

Continue TEXT: greedy by default, or sampling. Human mode streams the tokens as they come.

${PROMPT_HELP}
  --max-new-tokens N  how many tokens to add at most (default 20)
  --do-sample         sample instead of taking the most likely token
  --temperature T     sampling temperature (default 1)
  --top-k K           keep the K most likely tokens (default 0: all)
  --top-p P           keep the smallest set of tokens with probability ≥ P (default 1)
  --seed S            seed of the sampling and of random weights (default 0)
  --json              {"input_ids", "new_ids", "text"} on stdout
${LOAD_HELP.split("\n").filter((l) => !l.includes("--seed")).join("\n")}`,
    summary: "continue TEXT",
    options: {
      ...COMMON,
      ...LOADING,
      ...PROMPT,
      "max-new-tokens": {type: "string"},
      "do-sample": {type: "boolean"},
      temperature: {type: "string"},
      "top-k": {type: "string"},
      "top-p": {type: "string"}
    },
    positionals: ["MODEL", "TEXT"],
    run: generateCommand
  }
};

const MAIN_USAGE = `lm-workbench — look inside small language models

Usage: lm-workbench COMMAND MODEL [ARGS] [--json]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  .join("\n")}

MODEL is a folder, a URL, a name found in LMW_MODELS (folders separated by ":") or data/models, or a
Hugging Face Hub id. Run \`lm-workbench COMMAND --help\` for a command's options.`;

/** Run the CLI on `argv` (without node and the script); resolves to the exit code. */
export async function main(argv: string[], io: IO = defaultIO()): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (name === undefined || name === "--help" || name === "-h" || name === "help") {
      if (name === undefined) {
        io.err(MAIN_USAGE + "\n");
        return 1;
      }
      io.out(MAIN_USAGE + "\n");
      return 0;
    }
    const command = COMMANDS[name];
    if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}: the commands are ${Object.keys(COMMANDS).join(", ")}`);
    let parsed;
    try {
      parsed = parseArgs({args: rest, options: command.options, allowPositionals: true, strict: true});
    } catch (error) {
      throw new UsageError(error instanceof Error ? error.message : String(error), name);
    }
    const {values, positionals} = parsed;
    if (values.help) {
      io.out(command.usage + "\n");
      return 0;
    }
    // With --prompt-file, TEXT comes from the file and is not given on the command line.
    const expected = values["prompt-file"] !== undefined ? command.positionals.filter((p) => p !== "TEXT") : command.positionals;
    if (positionals.length !== expected.length) {
      const what = positionals.length < expected.length ? `missing ${expected.slice(positionals.length).join(" ")}` : `too many arguments`;
      throw new UsageError(what, name);
    }
    if (command.positionals.includes("TEXT")) positionals[1] = await promptText(positionals[1], values as Values, io, name);
    await command.run(positionals, values as Values, io);
    return 0;
  } catch (error) {
    if (error instanceof WorkbenchError) {
      io.err(`lm-workbench: ${error.message}\n`);
      if (error instanceof UsageError && error.command) io.err(`run \`lm-workbench ${error.command} --help\` for usage\n`);
    } else {
      io.err(`lm-workbench: unexpected error\n${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    }
    return 1;
  }
}

class UsageError extends WorkbenchError {
  constructor(message: string, readonly command?: string) {
    super(message);
  }
}

/**
 * TEXT as given, or read from `--prompt-file FILE` or standard input ("-"), less the one line end a file or
 * `echo` puts last (a prompt "ends" where the text does, not on a newline token).
 */
async function promptText(text: string | undefined, values: Values, io: IO, command: string): Promise<string> {
  const file = values["prompt-file"] as string | undefined;
  if (file === undefined && text !== "-") return text!;
  const chomp = (read: string) => read.replace(/\r?\n$/, "");
  if (file === undefined || file === "-") {
    if (!io.stdin) throw new UsageError("no standard input to read the text from", command);
    return chomp(await io.stdin());
  }
  try {
    return chomp(await readFile(file, "utf8"));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(`--prompt-file ${file}: ${code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a folder" : (error as Error).message}`, command);
  }
}

function defaultIO(): IO {
  // `lm-workbench … | head` closes the pipe early: stop quietly rather than crash on EPIPE.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(0);
    throw error;
  });
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    stdin: async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString("utf8");
    }
  };
}

// ---------------------------------------------------------------------------------------------------------
// Commands

async function inspect([id]: string[], values: Values, io: IO): Promise<void> {
  const source = await resolveSource(id);
  const {config: shownConfig, parameters, counts, moduleTree, weightFiles} = await describeModel(source);

  if (values.json) {
    io.out(
      JSON.stringify({
        config: shownConfig,
        parameters: parameters.map(({name, shape, numel}) => ({name, shape, numel})),
        counts,
        moduleTree
      }) + "\n"
    );
    return;
  }
  const weights = weightFiles ? `${weightFiles.join(", ")} (headers checked)` : "none (use --init random to trace or generate)";
  io.out(`${source.id}  (${source.location})\nweights: ${weights}\n\n`);
  io.out(
    table(
      ["config", "value"],
      Object.entries(shownConfig)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])
    ) + "\n\n"
  );
  const pct = (n: number) => `${((100 * n) / counts.total).toFixed(1)}%`;
  const components = ["embedding", "attention", "mlp", "norm", "head"] as const;
  io.out(
    table(
      ["component", "parameters", "share"],
      [...components.filter((c) => counts[c] > 0).map((c) => [c, fmt(counts[c]), pct(counts[c])]), ["total", fmt(counts.total), "100%"]],
      [false, true, true]
    ) + "\n\n"
  );
  io.out(
    table(
      ["layer", "attention", "mlp", "norm"],
      counts.layers.map((l, i) => [String(i), fmt(l.attention), fmt(l.mlp), fmt(l.norm)]),
      [true, true, true, true]
    ) + "\n\n"
  );
  io.out(moduleTree + "\n\n");
  io.out(
    table(
      ["parameter", "shape", "numel"],
      parameters.map((p) => [p.name, `[${p.shape.join(", ")}]`, fmt(p.numel)]),
      [false, false, true]
    ) + "\n"
  );
}

async function tokens([id, text]: string[], values: Values, io: IO): Promise<void> {
  const source = await resolveSource(id);
  const tokenizer = await loadTokenizer(source);
  // In a worker with a time limit: a tokenizer regex that backtracks without bound ends in an error, not a hang.
  const encode = sourceEncoder(source);
  let ids: number[], tokenStrings: string[];
  try {
    ({ids, tokens: tokenStrings} = await encode(text));
  } finally {
    await encode.dispose();
  }
  if (values.json) {
    io.out(JSON.stringify({ids, tokens: tokenStrings}) + "\n");
    return;
  }
  io.out(
    table(
      ["#", "id", "token", "piece"],
      ids.map((tid, i) => [String(i), String(tid), tokenStrings[i], JSON.stringify(tokenizer.idToPiece(tid))]),
      [true, true, false, false]
    ) + `\n${ids.length} tokens\n`
  );
}

async function trace([id, text]: string[], values: Values, io: IO): Promise<void> {
  const hooks = (values.hook as string[] | undefined) ?? [];
  if (hooks.length === 0) throw new UsageError("give at least one --hook PATH (e.g. model.layers.0.output)", "trace");
  const model = await load(id, values, io);
  try {
    const result = (await model.trace(text, hooks)) as unknown as Record<string, {shape: number[]; data: Float32Array}> & {
      input_ids: number[];
      tokens: string[];
    };
    if (values.json) {
      const out: Record<string, {shape: number[]; data: number[]}> = {};
      for (const path of hooks) out[path] = {shape: result[path].shape, data: Array.from(result[path].data)};
      io.out(JSON.stringify({input_ids: result.input_ids, tokens: result.tokens, hooks: out}) + "\n");
      return;
    }
    io.out(`${model.id}  weights: ${model.weightsOrigin}\ntokens (${result.tokens.length}): ${result.tokens.map((t) => JSON.stringify(t)).join(" ")}\n\n`);
    io.out(
      table(
        ["hook", "shape", "min", "max", "mean", "std", "first values"],
        hooks.map((path) => {
          const t = result[path];
          const s = stats(t.data);
          const first = Array.from(t.data.subarray(0, 4), num).join(", ") + (t.data.length > 4 ? ", …" : "");
          return [path, `[${t.shape.join(", ")}]`, num(s.min), num(s.max), num(s.mean), num(s.std), first];
        }),
        [false, false, true, true, true, true, false]
      ) + "\n"
    );
  } finally {
    await model.dispose();
  }
}

async function generateCommand([id, text]: string[], values: Values, io: IO): Promise<void> {
  const maxNewTokens = integer(values, "max-new-tokens", 20, 0);
  const temperature = number(values, "temperature", 1);
  const topK = integer(values, "top-k", 0, 0);
  const topP = number(values, "top-p", 1);
  const seed = integer(values, "seed", 0);
  const model = await load(id, values, io);
  try {
    const json = Boolean(values.json);
    // The prompt as the tokenizer gives it back, then what each token adds: together, generation.text.
    if (!json) io.out(model.tokenizer.decode((await model.prepareInput(text)).ids, {skipSpecialTokens: true}));
    const generation = await model.generate(text, {
      maxNewTokens,
      doSample: Boolean(values["do-sample"]),
      temperature,
      topK,
      topP,
      seed,
      onToken: json ? undefined : (token) => io.out(token.text)
    });
    if (json) {
      io.out(JSON.stringify({input_ids: generation.input_ids, new_ids: generation.new_ids, text: generation.text}) + "\n");
      return;
    }
    io.out("\n");
    io.err(`(${generation.new_ids.length} new tokens; stopped: ${generation.stopped}; weights: ${model.weightsOrigin})\n`);
  } finally {
    await model.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Helpers

async function load(id: string, values: Values, io: IO) {
  const init = values.init as string | undefined;
  if (init !== undefined && init !== "random" && init !== "checkpoint")
    throw new UsageError(`--init must be "random" or "checkpoint", got ${JSON.stringify(init)}`);
  const runtime = (values.runtime as string | undefined) ?? "node";
  if (!(RUNTIMES as readonly string[]).includes(runtime)) throw new UsageError(`--runtime must be one of ${RUNTIMES.join(", ")}; got ${JSON.stringify(runtime)}`);
  const options: LoadOptions = {init: init as LoadOptions["init"], seed: integer(values, "seed", 0), runtime: runtime as Runtime};
  if (!values.json) {
    let lastDownload = 0;
    options.onProgress = (p) => {
      if (p.stage === "download") {
        const now = Date.now();
        if (now - lastDownload < 500 && p.loaded !== p.total) return;
        lastDownload = now;
      }
      io.err(`${p.message}\n`);
    };
  }
  return loadModel(id, options);
}

async function loadTokenizer(source: ModelSource): Promise<Tokenizer> {
  const config = (await source.has("tokenizer_config.json")) ? await readJson<Record<string, unknown>>(source, "tokenizer_config.json") : {};
  if (!(await source.has("tokenizer.json"))) throw new WorkbenchError(`${source.location}: tokenizer.json is missing`);
  return Tokenizer.fromJson(await readJson(source, "tokenizer.json"), config);
}

function number(values: Values, name: string, fallback: number): number {
  const text = values[name] as string | undefined;
  if (text === undefined) return fallback;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got ${JSON.stringify(text)}`);
  return n;
}

function integer(values: Values, name: string, fallback: number, min = -Infinity): number {
  const n = number(values, name, fallback);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${name} must be a whole number${min > -Infinity ? ` ≥ ${min}` : ""}, got ${JSON.stringify(values[name])}`);
  return n;
}

/** An aligned text table; `right[i]` right-aligns column i. */
function table(header: string[], rows: string[][], right: boolean[] = []): string {
  // A loop, not Math.max(...rows): a config with 100,000 layers has that many rows, more than a call's arguments.
  const widths = header.map((h, i) => rows.reduce((width, r) => Math.max(width, r[i].length), h.length));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right[i] ? c.padStart(widths[i]) : i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

function fmt(n: number): string {
  return n.toLocaleString("en-US");
}

function num(x: number): string {
  return Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(3) : x.toFixed(4);
}
