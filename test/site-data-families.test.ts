/**
 * The lecture pages' data loaders on a site built with one mini fixture of every family (GPT-2, Llama, Qwen2,
 * Qwen3, GPT-NeoX, Gemma 3): the same checks as test/site-data-lecture.test.ts, whose tests this file runs
 * again with LMW_SITE_MODELS set. Each test file runs in its own process (vitest's forks pool), so the setting
 * stays here; the loaders, spawned from here, inherit it.
 */
import {expect, it} from "vitest";
import {siteModels} from "../docs/data/site-models.js";
import {ONE_PER_FAMILY as FAMILIES} from "./helpers/fixtures.js";

process.env.LMW_SITE_MODELS = FAMILIES.join(",");
await import("./site-data-lecture.test.js");

it("the site is built with one model of every family", () => {
  expect(siteModels().map((m) => [m.id, m.weights])).toEqual(FAMILIES.map((id) => [id, true]));
});
