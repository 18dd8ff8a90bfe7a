// Every page's precomputed numbers, in one archive: a page reads its file as FileAttachment("data/precomputed/
// tokens.json"), which Framework extracts from this archive at build time. One process loads each site model once
// (the full-size ones with random weights take most of the build) and runs every page's computation on it
// (docs/data/precompute/<page>.ts), where a loader per page loaded every model again for each page.
import JSZip from "jszip";
import {precomputeAll} from "./site-models.js";
import ablation from "./precompute/ablation.js";
import anatomy from "./precompute/anatomy.js";
import attention from "./precompute/attention.js";
import context from "./precompute/context.js";
import generation from "./precompute/generation.js";
import logitLens from "./precompute/logit-lens.js";
import patching from "./precompute/patching.js";
import steering from "./precompute/steering.js";
import tokens from "./precompute/tokens.js";

const PAGES = [generation, tokens, anatomy, context, attention, logitLens, patching, ablation, steering];

const zip = new JSZip();
// A fixed date: the same numbers make the same archive.
const date = new Date("2000-01-01T00:00:00Z");
for (const [file, content] of await precomputeAll(PAGES)) zip.file(file, JSON.stringify(content) + "\n", {date});
process.stdout.write(await zip.generateAsync({type: "nodebuffer", compression: "DEFLATE", platform: "UNIX"}));
