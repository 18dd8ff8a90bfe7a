// Observable Framework configuration for the lm-workbench site.
//
// The site builds OFFLINE. Three things make that so:
//
// 1. Pages import libraries from node_modules with bare specifiers (`import * as Plot from
//    "@observablehq/plot"`), never `npm:` (which downloads from jsDelivr). Framework bundles bare
//    imports from node_modules into `_node/`. Declaring Plot, Inputs, d3 or htl in a page also
//    shadows Framework's implicit `npm:` imports of them (an implicit import is only added for a
//    free variable).
// 2. Framework's own client bundle (`_observablehq/client.js`) holds lazy `import("npm:…")`s of its
//    recommended libraries (lodash, react-dom, …). Bundling it asks registry.npmjs.org for each
//    version — even though nothing is downloaded. seedNpmVersionCache() below answers those
//    questions from the local version cache (`docs/.observablehq/cache/_npm/<name>@<version>/`),
//    so the registry is never asked. Those lazy imports are never run unless a page names one of
//    those globals without importing it; the browser test fails on any request that leaves the
//    site.
// 3. No Google Fonts stylesheet (`globalStylesheets: []`); the theme's fallback serif is used.
//
// Library code lives in ../src; `docs/src` is a symlink to it, so pages import it as
// `./src/runtime/ort-web.js` (Framework finds the .ts and transpiles it). onnxruntime-web's .wasm
// is shipped through `import.meta.resolve("onnxruntime-web/…wasm")` in src/runtime/ort-web.ts,
// which Framework rewrites and copies into `_node/onnxruntime-web@<version>/`.
//
// Models ship with the site as plain files under /models/<name>/ (config.json, tokenizer.json,
// tokenizer_config.json, and model.safetensors where there are weights), written by the
// parameterized loaders docs/models/[model]/*.ts from the local model folders, and listed in
// /models/site.json. They are `dynamicPaths` (no page references them; the browser fetches them by
// URL). Which models: env LMW_SITE_MODELS (see docs/data/site-models.ts); where from: the folders in env
// LMW_MODELS, then data/models (which holds stories260K with its weights, and gpt2's and SmolLM2-135M's
// configs and tokenizers).

import {existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync} from "node:fs";
import {dirname, join} from "node:path";
import {fileURLToPath} from "node:url";
import {siteModelPaths} from "./docs/data/site-models.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = "docs";

/** Packages named by `npm:` imports inside Framework's client bundle. */
const CLIENT_NPM_PACKAGES = [
  "@observablehq/plot",
  "@observablehq/sample-datasets",
  "@uwdata/vgplot",
  "@viz-js/viz",
  "apache-arrow",
  "arquero",
  "d3",
  "d3-dsv",
  "echarts",
  "exceljs",
  "htl",
  "isoformat",
  "jszip",
  "katex",
  "leaflet",
  "lodash",
  "mapbox-gl",
  "mermaid",
  "parquet-wasm",
  "react",
  "react-dom",
  "sql.js",
  "topojson-client",
  "vega",
  "vega-lite",
  "vega-lite-api"
];

function installedVersion(name: string): string | undefined {
  const file = join(here, "node_modules", name, "package.json");
  return existsSync(file) ? JSON.parse(readFileSync(file, "utf8")).version : undefined;
}

/**
 * Records a version for each package in Framework's npm version cache, so that bundling the client
 * never asks the npm registry: the installed version when there is one, else `0.0.0-offline` (an
 * import of that would fail loudly in the browser, which is what we want).
 */
function seedNpmVersionCache(): void {
  const cache = join(here, root, ".observablehq", "cache", "_npm");
  for (const name of CLIENT_NPM_PACKAGES) {
    const slash = name.indexOf("/");
    const dir = slash > 0 ? join(cache, name.slice(0, slash)) : cache;
    const leaf = name.slice(slash + 1);
    if (existsSync(dir) && readdirSync(dir).some((entry) => entry.startsWith(`${leaf}@`))) continue;
    mkdirSync(join(dir, `${leaf}@${installedVersion(name) ?? "0.0.0-offline"}`), {recursive: true});
  }
}

seedNpmVersionCache();

/**
 * Framework reuses a data loader's cached output while the loader file itself is unchanged. Ours compute with
 * src/ and read the environment (which models, from where), so a change to either would ship stale numbers
 * (or a site.json listing other models than the pages load). Before each build and preview: cached outputs
 * older than the newest file under src/ or docs/data/ are dropped, and all of them when the environment the
 * loaders read differs from the one they were made with.
 */
function dropStaleLoaderOutputs(): void {
  const cache = join(here, root, ".observablehq", "cache");
  if (!existsSync(cache)) return;
  const files = (dir: string) =>
    readdirSync(dir, {withFileTypes: true, recursive: true})
      .filter((entry) => entry.isFile())
      .map((entry) => join(entry.parentPath, entry.name));
  const newest = (dir: string) => files(dir).reduce((latest, file) => Math.max(latest, statSync(file).mtimeMs), 0);
  const sources = Math.max(newest(join(here, "src")), newest(join(here, root, "data")));
  const stampFile = join(cache, ".lmw-environment.json");
  const stamp = JSON.stringify(Object.fromEntries(LOADER_ENVIRONMENT.map((name) => [name, process.env[name] ?? null])));
  const sameEnvironment = existsSync(stampFile) && readFileSync(stampFile, "utf8") === stamp;
  // Loader outputs sit beside Framework's own caches (_node, _npm, _observablehq, _build.json), under their
  // pages' paths (data/, models/).
  for (const entry of readdirSync(cache, {withFileTypes: true})) {
    if (!entry.isDirectory() || entry.name.startsWith("_") || entry.name.startsWith(".")) continue;
    for (const file of files(join(cache, entry.name))) {
      if (!sameEnvironment || statSync(file).mtimeMs < sources) rmSync(file, {force: true});
    }
  }
  writeFileSync(stampFile, stamp);
}

/** What the data loaders read from the environment. */
const LOADER_ENVIRONMENT = ["LMW_SITE_MODELS", "LMW_MODELS", "LMW_SHIP_WEIGHTS", "LMW_HUB_ENDPOINT"];

dropStaleLoaderOutputs();

export default {
  root,
  title: "lm-workbench",
  // The lecture's pages, in order; then "Inside the model" (writing into it); then the performance part of the
  // site in its own section: it is about the engine, not the lecture.
  pages: [
    {name: "Talking to a language model", path: "/generation"},
    {name: "Tokens and logits", path: "/tokens"},
    {name: "Anatomy", path: "/anatomy"},
    {name: "Context", path: "/context"},
    {name: "MLP and attention", path: "/mlp-attention"},
    // After the lecture: writing into the model.
    {
      name: "Inside the model",
      open: true,
      pages: [
        {name: "Logit lens", path: "/logit-lens"},
        {name: "Activation patching", path: "/patching"},
        {name: "Ablation", path: "/ablation"},
        {name: "Steering", path: "/steering"},
        {name: "Big models (NDIF)", path: "/big-models"}
      ]
    },
    {
      name: "Performance",
      collapsible: true,
      open: false,
      pages: [
        {name: "Benchmarks", path: "/performance"},
        {name: "Engine check", path: "/engine"}
      ]
    }
  ],
  dynamicPaths: [
    "/models/site.json",
    ...siteModelPaths(),
    // Exported modules: cells that other sites embed (docs/embed.md).
    "/embed/runtime.js",
    "/embed/next-token.js",
    "/embed/attention.js",
    "/embed/lens.js",
    "/embed/patching.js"
  ],
  style: "style.css",
  globalStylesheets: [],
  search: false,
  footer: "lm-workbench: a reactive workbench for looking inside small language models.",
  typographer: false
};
