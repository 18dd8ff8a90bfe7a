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
import {logitLens} from "./analysis/lens.js";
import {patchSweep, type PatchKind} from "./analysis/patching.js";
import {steeringEdit, steeringVector} from "./analysis/steering.js";
import {parseEdit, type Edit} from "./runtime/edits.js";
import type {Model} from "./runtime/model.js";
import type {LanguageModel} from "./runtime/language-model.js";
import {defaultAnswers} from "./analysis/inside-model.js";
import {DEFAULT_RELAY, NDIF_PREFIX, RemoteModel, loadRemoteModel, type JobProgress} from "./remote/remote-model.js";
import {
  GENERATION,
  LOGIT_LENS,
  PATCHING,
  STEERING,
  checkOption,
  describeRange,
  generationOptions,
  type OptionSpec
} from "./defaults.js";

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values = Record<string, string | boolean | string[] | undefined>;

/**
 * One command-line option: its name, its value's placeholder (none: a switch) and what it does. An option with
 * a `spec` (src/defaults.ts) takes its default and range from it: the help states them and `read` checks them.
 * Each command's parser options and help are generated from its list of these.
 */
interface Flag {
  name: string;
  value?: string;
  short?: string;
  multiple?: boolean;
  help: string;
  spec?: OptionSpec;
  /** Parsed but not listed in the help (--help itself). */
  hidden?: boolean;
}

/** A positional argument; listed in the help where it has something to say. */
interface Positional {
  name: string;
  help?: string;
}

interface Command {
  /** What follows `lm-workbench NAME` in the usage line. */
  synopsis: string;
  /** The paragraph under it. */
  about: string;
  summary: string;
  /** Positional arguments, in order (all required). */
  positionals: Positional[];
  flags: Flag[];
  run(args: string[], values: Values, io: IO): Promise<void>;
}

interface IO {
  out(text: string): void;
  err(text: string): void;
  /** Everything on standard input, for TEXT "-" and `--prompt-file -`. */
  stdin?(): Promise<string>;
}

/** `maxNewTokens` → `max-new-tokens`: the CLI spells the API's options in kebab case. */
const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** The flag of an option stated in src/defaults.ts, its help that spec's description unless `help` says it here. */
function specFlag(name: string, spec: OptionSpec, value: string, help = spec.description): Flag {
  return {name: kebab(name), value, spec, help};
}

const json = (shape: string): Flag => ({name: "json", help: `${shape} on stdout`});
const HELP: Flag = {name: "help", short: "h", help: "this help", hidden: true};

/** TEXT, and where it may come from instead of the command line: a long prompt is better in a file or on stdin. */
const TEXT: Positional = {name: "TEXT", help: `the text; "-" reads it from standard input`};
const PROMPT_FILE: Flag = {
  name: "prompt-file",
  value: "FILE",
  help: `read the text from FILE ("-": standard input) instead of TEXT`
};

const LOADING: Flag[] = [
  specFlag(
    "init",
    {
      type: "choice",
      choices: ["checkpoint", "random"],
      default: "checkpoint",
      description: "the checkpoint's weights, or random ones drawn from --seed for a folder without weights"
    },
    "I"
  ),
  specFlag(
    "runtime",
    {
      type: "choice",
      choices: RUNTIMES,
      default: "node",
      description:
        "where the model runs: node is onnxruntime-node, web onnxruntime-web's WASM, webgpu and webgpu-native " +
        "onnxruntime-web's WebGPU backends on Dawn, which need a Vulkan GPU"
    },
    "R"
  )
];
/**
 * Running on NDIF instead of here (src/remote/): MODEL is then the Hub id NDIF hosts, the relay's address comes
 * from --relay and the API key from NDIF_API_KEY (never from the command line, where other users see it).
 */
const REMOTE: Flag[] = [
  {
    name: "remote",
    value: "ndif",
    help:
      "run on NDIF (hosted Llama-3.1-8B/70B/405B and others) through the relay (relay/PROTOCOL.md), with the " +
      "API key from NDIF_API_KEY; MODEL is the Hub id (e.g. meta-llama/Llama-3.1-8B); an id written ndif:ID does the same"
  },
  {name: "relay", value: "URL", help: `the relay's address with --remote ndif (default ${DEFAULT_RELAY})`}
];

/** The seed of random weights; `generate` says it seeds the sampling too. */
const WEIGHTS_SEED = specFlag("seed", GENERATION.seed, "N", "seed of the random weights (--init random)");

// ---------------------------------------------------------------------------------------------------------
// Writing into the model: edits (trace --edit), steering (generate --steer), the logit lens and patching;
// their functions are further down, with the other commands

const EDIT: Flag = {
  name: "edit",
  value: `"HOOK[SLICE] OP VALUE"`,
  multiple: true,
  help:
    "write into a hook point before anything downstream reads it (repeatable, applied in order): OP is = += *=, " +
    `VALUE a number, SLICE as in PyTorch on the hook's tensor ("[:, 2]" position 2, "[:, :, 16:24]" columns 16-23; ` +
    "none: the whole tensor); an index outside its axis is an error, a slice clamps, e.g. " +
    `--edit "model.layers.1.mlp.output = 0"`
};

const STEER: Flag[] = [
  {
    name: "steer",
    value: "HOOK",
    help:
      "add alpha × (HOOK at the last token of --steer-from − at that of --steer-to) to HOOK at every position of " +
      "every step (e.g. model.layers.3.output)"
  },
  {name: "steer-from", value: "TEXT", help: "the prompt steered towards"},
  {name: "steer-to", value: "TEXT", help: "the prompt steered away from"},
  specFlag("alpha", STEERING.alpha, "A")
];

const INTERVENTION_COMMANDS: Record<string, Command> = {
  lens: {
    synopsis: "MODEL TEXT [--top-k K] [--json]",
    about:
      "The logit lens: every layer's output read through the model's own final norm and unembedding, at every " +
      "position of TEXT; the K most likely tokens of each (computed inside the graph).",
    summary: "logit lens: each layer's top tokens at every position",
    positionals: [{name: "MODEL"}, {name: "TEXT"}],
    flags: [
      specFlag("topK", LOGIT_LENS.k, "K"),
      json(`{"input_ids", "tokens", "layers": [{"hook", "top": [[{"id", "token", "prob"}…] per position]}]}`),
      ...LOADING,
      WEIGHTS_SEED,
      ...REMOTE
    ],
    run: lensCommand
  },
  patch: {
    synopsis: "MODEL --clean TEXT --corrupt TEXT [--module resid|attn|mlp] [--ids I,J,…] [--json]",
    about:
      "Activation patching: the corrupt prompt run once per (layer, position) with one block's output there set to " +
      "the clean run's value; the last position's logits of the tracked tokens for each. The two prompts must have " +
      "the same number of tokens.",
    summary: "activation patching over every (layer, position)",
    positionals: [{name: "MODEL"}],
    flags: [
      {name: "clean", value: "TEXT", help: "the clean prompt"},
      {name: "corrupt", value: "TEXT", help: "the corrupt prompt, as many tokens long"},
      specFlag("module", PATCHING.kind, "M"),
      {
        name: "ids",
        value: "I,J,…",
        help:
          `token ids to track (default: the clean run's ${PATCHING.each} most likely next tokens, then the corrupt ` +
          `run's ${PATCHING.each} most likely not already listed; with --remote ndif two ids, default the clean run's ` +
          `most likely token against the corrupt run's)`
      },
      json(`{"clean_ids", "corrupt_ids", "hooks", "ids", "logits": {"shape": [layers, T, ids], "data"}}`),
      ...LOADING,
      WEIGHTS_SEED,
      ...REMOTE
    ],
    run: patchCommand
  }
};

const COMMANDS: Record<string, Command> = {
  inspect: {
    synopsis: "MODEL [--json]",
    about:
      "The config, parameters, parameter counts and module tree of MODEL, from config.json and the safetensors " +
      "headers only: no weights are read, and a folder without weights works. When a checkpoint exists, its " +
      "headers are checked against the parameter list.",
    summary: "config, parameters, counts and module tree (no weights read)",
    positionals: [{name: "MODEL"}],
    flags: [json(`{"config", "parameters", "counts", "moduleTree"}`)],
    run: inspect
  },
  tokens: {
    synopsis: "MODEL TEXT [--json]",
    about: "TEXT tokenized by MODEL's tokenizer.",
    summary: "tokenize TEXT",
    positionals: [{name: "MODEL"}, TEXT],
    flags: [PROMPT_FILE, json(`{"ids", "tokens"}`)],
    run: tokens
  },
  trace: {
    synopsis: `MODEL TEXT --hook PATH [--hook PATH…] [--edit "HOOK[SLICE] OP VALUE"…] [--json] [--init random --seed N] [--runtime ${RUNTIMES.join("|")}]`,
    about:
      "One forward pass over TEXT, bringing back the tensors at the hook points (e.g. model.layers.1.output, " +
      "transformer.h.0.attn.output) or weights named.",
    summary: "capture activations at hook points",
    positionals: [{name: "MODEL"}, TEXT],
    flags: [
      PROMPT_FILE,
      {name: "hook", value: "PATH", multiple: true, help: "a hook point or weight name (repeatable)"},
      EDIT,
      json(`{"input_ids", "tokens", "hooks": {PATH: {"shape", "data"}}}`),
      ...LOADING,
      WEIGHTS_SEED,
      ...REMOTE
    ],
    run: trace
  },
  generate: {
    synopsis: "MODEL TEXT --max-new-tokens N [--do-sample --temperature T --top-k K --top-p P --seed S] [--json]",
    about: "Continue TEXT: greedy by default, or sampling. Human mode streams the tokens as they come.",
    summary: "continue TEXT",
    positionals: [{name: "MODEL"}, TEXT],
    flags: [
      PROMPT_FILE,
      specFlag("maxNewTokens", GENERATION.maxNewTokens, "N"),
      {name: "do-sample", help: "sample instead of taking the most likely token"},
      specFlag("temperature", GENERATION.temperature, "T"),
      specFlag("topK", GENERATION.topK, "K"),
      specFlag("topP", GENERATION.topP, "P"),
      specFlag("seed", GENERATION.seed, "S", "seed of the sampling and of random weights"),
      {name: "no-stop", help: "keep going past the end-of-sequence token"},
      {
        name: "graph-capture",
        help: "with --runtime webgpu-native: record the decode step once and replay it (graph capture)"
      },
      ...STEER,
      json(`{"input_ids", "new_ids", "text"}`),
      ...LOADING,
      ...REMOTE
    ],
    run: generateCommand
  },
  ...INTERVENTION_COMMANDS
};

/** A command's parser options, from its flags. */
function parserOptions(command: Command): Options {
  const options: Options = {};
  for (const flag of [...command.flags, HELP])
    options[flag.name] = {
      type: flag.value ? "string" : "boolean",
      ...(flag.short && {short: flag.short}),
      ...(flag.multiple && {multiple: true})
    };
  return options;
}

/** A command's help: the usage line, what it does, and one entry per argument and option with its range and default. */
function usage(name: string, command: Command): string {
  const entries: [string, string][] = [
    ...command.positionals.filter((p) => p.help).map((p): [string, string] => [p.name, p.help!]),
    ...command.flags
      .filter((flag) => !flag.hidden)
      .map((flag): [string, string] => [
        `--${flag.name}${flag.value ? ` ${flag.value}` : ""}`,
        flag.help + (flag.spec ? ` (${specNote(flag.spec)})` : "")
      ])
  ];
  return [
    `lm-workbench ${name} ${command.synopsis}`,
    "",
    wrap(command.about, 0),
    "",
    ...entries.map(([left, text]) =>
      left.length <= HELP_COLUMN - 4
        ? `  ${left.padEnd(HELP_COLUMN - 2)}${wrap(text, HELP_COLUMN).trimStart()}`
        : `  ${left}\n${wrap(text, HELP_COLUMN)}`
    )
  ].join("\n");
}

const HELP_COLUMN = 22;
const HELP_WIDTH = 112;

/** An option's range and default, in words: "a whole number ≥ 1; default 20". */
function specNote(spec: OptionSpec): string {
  if (spec.type === "choice") return `one of ${spec.choices.join(", ")}; default ${spec.default}`;
  return `${describeRange(spec)}; default ${spec.default}`;
}

/** `text` in lines of at most HELP_WIDTH characters, each indented by `indent`. */
function wrap(text: string, indent: number): string {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && indent + line.length + 1 + word.length > HELP_WIDTH) (lines.push(line), (line = word));
    else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines.map((l) => " ".repeat(indent) + l).join("\n");
}

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
    if (!command)
      throw new UsageError(
        `unknown command ${JSON.stringify(name)}: the commands are ${Object.keys(COMMANDS).join(", ")}`
      );
    let parsed;
    try {
      parsed = parseArgs({
        args: negativeValues(rest, parserOptions(command)),
        allowPositionals: true,
        options: parserOptions(command),
        strict: true
      });
    } catch (error) {
      throw new UsageError(error instanceof Error ? error.message : String(error), name);
    }
    const {values, positionals} = parsed;
    if (values.help) {
      io.out(usage(name, command) + "\n");
      return 0;
    }
    // With --prompt-file, TEXT comes from the file and is not given on the command line.
    const names = command.positionals.map((p) => p.name);
    const expected = values["prompt-file"] !== undefined ? names.filter((p) => p !== "TEXT") : names;
    if (positionals.length !== expected.length) {
      const what =
        positionals.length < expected.length
          ? `missing ${expected.slice(positionals.length).join(" ")}`
          : `too many arguments`;
      throw new UsageError(what, name);
    }
    if (names.includes("TEXT")) positionals[1] = await promptText(positionals[1], values as Values, io, name);
    await command.run(positionals, values as Values, io);
    return 0;
  } catch (error) {
    if (error instanceof WorkbenchError) {
      io.err(`lm-workbench: ${error.message}\n`);
      if (error instanceof UsageError && error.command)
        io.err(`run \`lm-workbench ${error.command} --help\` for usage\n`);
    } else {
      io.err(
        `lm-workbench: unexpected error\n${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`
      );
    }
    return 1;
  }
}

/**
 * `--alpha -4`: parseArgs takes "-4" for an option and refuses; a string option followed by a negative number
 * gets it as its value (`--alpha=-4`), as users expect.
 */
function negativeValues(args: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = args[i].startsWith("--") ? args[i].slice(2) : undefined;
    if (name && options[name]?.type === "string" && /^-\d|^-\.\d/.test(args[i + 1] ?? ""))
      out.push(`${args[i]}=${args[++i]}`);
    else out.push(args[i]);
  }
  return out;
}

class UsageError extends WorkbenchError {
  constructor(
    message: string,
    readonly command?: string
  ) {
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
    throw new UsageError(
      `--prompt-file ${file}: ${code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a folder" : (error as Error).message}`,
      command
    );
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
  const weights = weightFiles
    ? `${weightFiles.join(", ")} (headers checked)`
    : "none (use --init random to trace or generate)";
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
      [
        ...components.filter((c) => counts[c] > 0).map((c) => [c, fmt(counts[c]), pct(counts[c])]),
        ["total", fmt(counts.total), "100%"]
      ],
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
  const model: LanguageModel = remoteOf(id, values) ? await loadRemote(id, values, io) : await load(id, values, io);
  try {
    const result = (await model.trace(text, hooks, {edits: editsOf(values)})) as unknown as Record<
      string,
      {shape: number[]; data: Float32Array}
    > & {
      input_ids: number[];
      tokens: string[];
    };
    if (values.json) {
      const out: Record<string, {shape: number[]; data: number[]}> = {};
      for (const path of hooks) out[path] = {shape: result[path].shape, data: Array.from(result[path].data)};
      io.out(JSON.stringify({input_ids: result.input_ids, tokens: result.tokens, hooks: out}) + "\n");
      return;
    }
    io.out(
      `${model.id}  weights: ${model.weightsOrigin}\ntokens (${result.tokens.length}): ${result.tokens.map((t) => JSON.stringify(t)).join(" ")}\n\n`
    );
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
  // Checked before the model loads: a value out of range fails at once.
  const settings = usageErrors(() =>
    generationOptions(
      {
        maxNewTokens: numberOf(values, "max-new-tokens"),
        doSample: Boolean(values["do-sample"]),
        temperature: numberOf(values, "temperature"),
        topK: numberOf(values, "top-k"),
        topP: numberOf(values, "top-p"),
        seed: numberOf(values, "seed")
      },
      (name) => `--${kebab(name)}`
    )
  );
  const alpha = option(values, "alpha", STEER) as number;
  const remote = remoteOf(id, values);
  if (remote && values.steer !== undefined)
    throw new UsageError(
      "--steer is not available with --remote ndif: the relay's generation takes no edits",
      "generate"
    );
  const model = remote ? await loadRemote(id, values, io) : await load(id, values, io);
  try {
    const edits = model instanceof RemoteModel ? [] : await steeringEdits(model, values, alpha);
    const json = Boolean(values.json);
    // The prompt as the tokenizer gives it back, then what each token adds: together, generation.text.
    if (!json) io.out(model.tokenizer.decode((await model.prepareInput(text)).ids, {skipSpecialTokens: true}));
    const generation = await model.generate(text, {
      ...settings,
      ...(edits.length && {edits}),
      stopAtEos: !values["no-stop"],
      onToken: json ? undefined : (token) => io.out(token.text)
    });
    if (json) {
      io.out(
        JSON.stringify({input_ids: generation.input_ids, new_ids: generation.new_ids, text: generation.text}) + "\n"
      );
      return;
    }
    io.out("\n");
    io.err(
      `(${generation.new_ids.length} new tokens; stopped: ${generation.stopped}; weights: ${model.weightsOrigin})\n`
    );
  } finally {
    await model.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Writing into the model: the functions behind the commands and options above

/** `--edit` values, parsed. */
function editsOf(values: Values): Edit[] {
  return ((values.edit as string[] | undefined) ?? []).map(parseEdit);
}

/** `--steer HOOK --steer-from A --steer-to B --alpha X` as the edit generation applies at every step (none without --steer). */
async function steeringEdits(model: Model, values: Values, alpha: number): Promise<Edit[]> {
  const hook = values.steer as string | undefined;
  const from = values["steer-from"] as string | undefined;
  const to = values["steer-to"] as string | undefined;
  if (hook === undefined) {
    if (from !== undefined || to !== undefined || values.alpha !== undefined)
      throw new UsageError("--steer-from, --steer-to and --alpha go with --steer HOOK", "generate");
    return [];
  }
  if (from === undefined || to === undefined)
    throw new UsageError("--steer needs --steer-from TEXT and --steer-to TEXT", "generate");
  const vector = await steeringVector(model, hook, from, to);
  return [steeringEdit(hook, vector, alpha, "--alpha")];
}

async function lensCommand([id, text]: string[], values: Values, io: IO): Promise<void> {
  const k = option(values, "top-k", INTERVENTION_COMMANDS.lens.flags) as number;
  const model = remoteOf(id, values) ? await loadRemote(id, values, io) : await load(id, values, io);
  try {
    const lens = model instanceof RemoteModel ? await model.logitLens(text, {k}) : await logitLens(model, text, {k});
    const T = lens.input_ids.length;
    const decode = (tid: number) => model.tokenizer.decode([tid]);
    const layers = lens.hooks.map((hook, l) => ({
      hook,
      top: Array.from({length: T}, (_, t) =>
        Array.from({length: k}, (_, j) => {
          const at = (l * T + t) * k + j;
          const tid = lens.topIds.data[at];
          return {id: tid, token: decode(tid), prob: Math.exp(lens.topLogprobs.data[at])};
        })
      )
    }));
    if (values.json) {
      io.out(JSON.stringify({input_ids: lens.input_ids, tokens: lens.tokens, layers}) + "\n");
      return;
    }
    io.out(
      `${model.id}  weights: ${model.weightsOrigin}\nthe most likely next token at each layer (rows) and position (columns), with its probability\n\n`
    );
    io.out(
      table(
        ["layer", ...lens.tokens.map((t, i) => `${i} ${JSON.stringify(t)}`)],
        layers.map((layer, l) => [
          String(l),
          ...layer.top.map((top) => `${JSON.stringify(top[0].token)} ${top[0].prob.toFixed(2)}`)
        ]),
        [true]
      ) + "\n"
    );
  } finally {
    await model.dispose();
  }
}

async function patchCommand([id]: string[], values: Values, io: IO): Promise<void> {
  const clean = values.clean as string | undefined;
  const corrupt = values.corrupt as string | undefined;
  if (clean === undefined || corrupt === undefined)
    throw new UsageError("give both --clean TEXT and --corrupt TEXT", "patch");
  const kind = option(values, "module", INTERVENTION_COMMANDS.patch.flags) as PatchKind;
  const idsText = values.ids as string | undefined;
  const ids = idsText?.split(",").map((part) => {
    const n = Number(part.trim());
    if (part.trim() === "" || !Number.isInteger(n))
      throw new UsageError(`--ids must be token ids separated by commas, got ${JSON.stringify(idsText)}`, "patch");
    return n;
  });
  const model = remoteOf(id, values) ? await loadRemote(id, values, io) : await load(id, values, io);
  try {
    const sweep =
      model instanceof RemoteModel
        ? await model.patchSweep(clean, corrupt, kind, {
            ids:
              (ids as [number, number] | undefined) ??
              defaultAnswers(await model.nextTokenLogits(clean), await model.nextTokenLogits(corrupt))
          })
        : await patchSweep(model, clean, corrupt, kind, {
            ids,
            onProgress: values.json ? undefined : (done, total) => io.err(`patched runs: ${done} of ${total}\n`)
          });
    if (values.json) {
      io.out(
        JSON.stringify({
          clean_ids: sweep.clean_ids,
          corrupt_ids: sweep.corrupt_ids,
          hooks: sweep.hooks,
          ids: sweep.ids,
          logits: {shape: sweep.logits.shape, data: Array.from(sweep.logits.data)}
        }) + "\n"
      );
      return;
    }
    const [a, b] = sweep.ids;
    const [L, T, n] = sweep.logits.shape;
    const decode = (tid: number) => JSON.stringify(model.tokenizer.decode([tid]));
    const diff = (logits: ArrayLike<number>) => logits[a] - logits[b];
    io.out(`${model.id}  weights: ${model.weightsOrigin}  patching ${kind}\n`);
    io.out(
      `logit difference ${decode(a)} − ${decode(b ?? a)}: clean ${num(diff(sweep.clean))}, corrupt ${num(diff(sweep.corrupt))}; per patched (layer, position):\n\n`
    );
    io.out(
      table(
        ["layer", ...sweep.corrupt_tokens.map((t, i) => `${i} ${JSON.stringify(t)}`)],
        Array.from({length: L}, (_, l) => [
          String(l),
          ...Array.from({length: T}, (_, t) =>
            num(sweep.logits.data[(l * T + t) * n] - (n > 1 ? sweep.logits.data[(l * T + t) * n + 1] : 0))
          )
        ]),
        Array(T + 1).fill(true)
      ) + "\n"
    );
  } finally {
    await model.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Helpers

async function load(id: string, values: Values, io: IO) {
  const init = option(values, "init", LOADING) as LoadOptions["init"];
  const runtime = option(values, "runtime", LOADING) as Runtime;
  if (values["graph-capture"] && runtime !== "webgpu-native")
    throw new UsageError(`--graph-capture needs --runtime webgpu-native (the provider that replays), not ${runtime}`);
  const options: LoadOptions = {
    init,
    seed: option(values, "seed", [WEIGHTS_SEED]) as number,
    runtime,
    graphCapture: Boolean(values["graph-capture"])
  };
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

/** Whether MODEL runs on NDIF: `--remote ndif`, or an id written `ndif:ID`. Local-only options are refused with it. */
function remoteOf(id: string, values: Values): boolean {
  const remote = values.remote as string | undefined;
  if (remote !== undefined && remote !== "ndif")
    throw new UsageError(`--remote takes ndif (the only remote engine), got ${JSON.stringify(remote)}`);
  const on = remote === "ndif" || id.startsWith(NDIF_PREFIX);
  if (!on && values.relay !== undefined) throw new UsageError("--relay goes with --remote ndif");
  if (on)
    for (const local of ["runtime", "init", "graph-capture"])
      if (values[local] !== undefined)
        throw new UsageError(`--${local} chooses how a model runs here; with --remote ndif it runs on NDIF`);
  return on;
}

/** The model on NDIF through the relay; in human mode each job's state and queue position go to stderr. */
async function loadRemote(id: string, values: Values, io: IO): Promise<RemoteModel> {
  const onJob = values.json
    ? undefined
    : (p: JobProgress) =>
        io.err(
          `NDIF ${p.experiment} job: ${p.state}${p.position !== undefined ? ` (position ${p.position} in the queue)` : ""}\n`
        );
  if (!values.json) io.err(`reading ${id}'s config and tokenizer through the relay\n`);
  return loadRemoteModel(id, {relay: values.relay as string | undefined, apiKey: process.env.NDIF_API_KEY, onJob});
}

async function loadTokenizer(source: ModelSource): Promise<Tokenizer> {
  const config = (await source.has("tokenizer_config.json"))
    ? await readJson<Record<string, unknown>>(source, "tokenizer_config.json")
    : {};
  if (!(await source.has("tokenizer.json"))) throw new WorkbenchError(`${source.location}: tokenizer.json is missing`);
  return Tokenizer.fromJson(await readJson(source, "tokenizer.json"), config);
}

/** The number given as `--name`, or undefined; text that is not a number is a usage error. */
function numberOf(values: Values, name: string): number | undefined {
  const text = values[name] as string | undefined;
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n))
    throw new UsageError(`--${name} must be a number, got ${JSON.stringify(text)}`);
  return n;
}

/** `--name`'s value (its default where not given), checked against the spec it was declared with. */
function option(values: Values, name: string, flags: Flag[]): number | string {
  const spec = flags.find((flag) => flag.name === name)!.spec!;
  return usageErrors(() =>
    spec.type === "choice"
      ? checkOption(spec, values[name] as string | undefined, `--${name}`)
      : checkOption(spec, numberOf(values, name), `--${name}`)
  );
}

/** The engine's range errors (src/defaults.ts), as usage errors: they name the option as typed. */
function usageErrors<T>(f: () => T): T {
  try {
    return f();
  } catch (error) {
    if (error instanceof WorkbenchError && !(error instanceof UsageError)) throw new UsageError(error.message);
    throw error;
  }
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
