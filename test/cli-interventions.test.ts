/**
 * The CLI's interventions, run as users run them (`node bin/lm-workbench.js …`), on the committed fixtures
 * (LMW_MODELS=test/fixtures), against the intervention references: `lens`, `patch`, `trace --edit`,
 * `generate --steer`.
 */
import {describe, expect, it} from "vitest";
import {readInterventions} from "./helpers/interventions.js";
import {RELATIVE, relativeError} from "./helpers/fixtures.js";
import {cli, expectCleanError, json} from "./helpers/cli.js";

describe.concurrent("lm-workbench interventions", () => {
  it("lens --top-k 10 --json: each layer's top tokens and probabilities at every position", async () => {
    const ref = readInterventions("stories260K");
    const c = ref.case("logit_lens");
    const out = json(await cli("lens", "stories260K", c.text, "--top-k", "10", "--json"));
    expect(out.input_ids).toEqual(c.input_ids);
    expect(out.tokens).toHaveLength(c.input_ids.length);
    expect(out.layers.map((l: {hook: string}) => l.hook)).toEqual(c.hooks);
    const ids = ref.tensor("lens.top10_ids").data;
    const logprobs = ref.tensor("lens.top10_logprobs").data;
    const T = c.input_ids.length;
    const gotIds: number[] = [],
      gotProbs: number[] = [],
      wantProbs: number[] = [];
    out.layers.forEach((layer: {top: {id: number; token: string; prob: number}[][]}, l: number) => {
      expect(layer.top).toHaveLength(T);
      layer.top.forEach((top, t) =>
        top.forEach((entry, j) => {
          gotIds.push(entry.id);
          gotProbs.push(entry.prob);
          wantProbs.push(Math.exp(logprobs[(l * T + t) * 10 + j]));
          expect(typeof entry.token).toBe("string");
        })
      );
    });
    expect(gotIds).toEqual(Array.from(ids));
    expect(relativeError(gotProbs, wantProbs)).toBeLessThan(RELATIVE);
  });

  it("patch --module attn --ids …: the tracked logits of every patched run; default ids: 4 clean, then 4 corrupt", async () => {
    const ref = readInterventions("mini-gpt2");
    const c = ref.case("patch_attn");
    const [tracked, defaults] = await Promise.all([
      cli(
        "patch",
        "mini-gpt2",
        "--clean",
        c.clean,
        "--corrupt",
        c.corrupt,
        "--module",
        "attn",
        "--ids",
        c.tracked_ids.join(","),
        "--json"
      ),
      cli("patch", "mini-gpt2", "--clean", c.clean, "--corrupt", c.corrupt, "--json")
    ]);
    const out = json(tracked);
    expect(out.clean_ids).toEqual(c.clean_ids);
    expect(out.corrupt_ids).toEqual(c.corrupt_ids);
    expect(out.hooks).toEqual(["transformer.h.0.attn.output", "transformer.h.1.attn.output"]);
    expect(out.ids).toEqual(c.tracked_ids);
    expect(out.logits.shape).toEqual([2, c.clean_ids.length, c.tracked_ids.length]);
    expect(relativeError(out.logits.data, ref.tensor("patch.attn.tracked_logits").data)).toBeLessThan(RELATIVE);
    const resid = json(defaults);
    expect(resid.hooks).toEqual(["transformer.h.0.output", "transformer.h.1.output"]);
    expect(new Set(resid.ids).size).toBe(8);
    // The ids the fixture tracks too: the same columns of the sweep.
    const want = ref.tensor("patch.resid.last_logits").data;
    const [L, T, n] = resid.logits.shape;
    const got: number[] = [],
      expected: number[] = [];
    for (let r = 0; r < L * T; r++)
      resid.ids.forEach(
        (id: number, m: number) => (got.push(resid.logits.data[r * n + m]), expected.push(want[r * 512 + id]))
      );
    expect(relativeError(got, expected)).toBeLessThan(RELATIVE);
  });

  it("trace --edit: layer 1's MLP output zeroed, read at the logits", async () => {
    const ref = readInterventions("mini-llama");
    const c = ref.case("zero_mlp");
    const out = json(
      await cli(
        "trace",
        "mini-llama",
        c.text,
        "--hook",
        "lm_head.output",
        "--hook",
        c.hook,
        "--edit",
        `${c.hook} = 0`,
        "--json"
      )
    );
    expect(out.hooks[c.hook].data.every((v: number) => v === 0)).toBe(true);
    expect(relativeError(out.hooks["lm_head.output"].data, ref.tensor("zero_mlp.logits").data)).toBeLessThan(RELATIVE);
  });

  it("trace --edit with a slice: one head's columns scaled by 0 equals that run of the ablation sweep", async () => {
    const ref = readInterventions("mini-gpt2");
    const c = ref.case("ablate_head");
    const D = ref.json.head_dim;
    const out = json(
      await cli(
        "trace",
        "mini-gpt2",
        c.text,
        "--hook",
        "lm_head.output",
        "--edit",
        `transformer.h.1.attn.c_proj.input[:, :, ${2 * D}:${3 * D}] *= 0`,
        "--json"
      )
    );
    const V = 512;
    const logits = out.hooks["lm_head.output"].data;
    const row = (1 * ref.json.heads + 2) * V;
    expect(
      relativeError(logits.slice(logits.length - V), ref.tensor("ablate_head.last_logits").data.subarray(row, row + V))
    ).toBeLessThan(RELATIVE);
  });

  it.each([4, -4])("generate --steer … --alpha %d --no-stop: the steered continuation", async (alpha) => {
    const ref = readInterventions("stories260K");
    const c = ref.case("steer");
    const want = c.generations.find((g: {alpha: number}) => g.alpha === alpha);
    const out = json(
      await cli(
        "generate",
        "stories260K",
        c.prompt,
        "--steer",
        c.hook,
        "--steer-from",
        c.from,
        "--steer-to",
        c.to,
        "--alpha",
        String(alpha),
        "--no-stop",
        "--max-new-tokens",
        "20",
        "--json"
      )
    );
    expect(out.input_ids).toEqual(c.prompt_ids);
    expect(out.new_ids).toEqual(want.new_ids);
  });

  it("trace --edit at an index that does not exist is an error (PyTorch's IndexError), a slice past the end clamps", async () => {
    const hook = "model.layers.1.mlp.output";
    const [position, column, clamped, exact] = await Promise.all([
      cli("trace", "stories260K", "x", "--hook", "lm_head.output", "--edit", `${hook}[:, 99] = 0`),
      cli("trace", "stories260K", "x", "--hook", "lm_head.output", "--edit", `${hook}[:, :, 9999] = 1`, "--json"),
      cli("trace", "stories260K", "x", "--hook", "lm_head.output", "--edit", `${hook}[:, 1:99] = 0`, "--json"),
      cli("trace", "stories260K", "x", "--hook", "lm_head.output", "--edit", `${hook}[:, 1:] = 0`, "--json")
    ]);
    expectCleanError(
      position,
      /edit at model\.layers\.1\.mlp\.output: index 99 is out of bounds for axis 1 \(token positions\) with size 3/
    );
    expectCleanError(
      column,
      /edit at model\.layers\.1\.mlp\.output: index 9999 is out of bounds for axis 2 \(the last\) with size 64/
    );
    expect(position.stdout).toBe("");
    expect(json(clamped)).toEqual(json(exact));
  });

  it("errors name what is wrong: prompts of different lengths, an edit that cannot be read, steering without its prompts", async () => {
    const [lengths, syntax, steer, kind] = await Promise.all([
      cli("patch", "mini-gpt2", "--clean", "The city Paris", "--corrupt", "The town of Rome is", "--json"),
      cli("trace", "mini-gpt2", "a", "--hook", "lm_head.output", "--edit", "transformer.h.0.output[:, 2] ^= 1"),
      cli("generate", "mini-gpt2", "a", "--steer", "transformer.h.0.output", "--alpha", "2"),
      cli("patch", "mini-gpt2", "--clean", "a", "--corrupt", "b", "--module", "heads")
    ]);
    expectCleanError(lengths, /as many tokens.*clean is 9 .*corrupt 12/);
    expectCleanError(syntax, /cannot read the edit .*HOOK\[SLICE\] OP VALUE/);
    expectCleanError(steer, /--steer needs --steer-from TEXT and --steer-to TEXT/);
    expectCleanError(kind, /--module must be one of resid, attn, mlp/);
  });
});
