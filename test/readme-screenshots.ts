/**
 * The README's pictures: each lecture page of a real build, live on stories260K (the model that ships with
 * the site), in Chromium. Run by hand after a change to the pages: `npx tsx test/readme-screenshots.ts`
 * (or name the pages to retake: `npx tsx test/readme-screenshots.ts logit-lens patching`).
 */
import {mkdirSync} from "node:fs";
import {join} from "node:path";
import {launchBrowser, quietModel} from "./helpers/browser.js";
import {buildSiteCopy, ROOT} from "./helpers/site.js";
import {serveStatic} from "./helpers/static-server.js";

const ALL = [
  "generation",
  "tokens",
  "anatomy",
  "context",
  "mlp-attention",
  "logit-lens",
  "patching",
  "ablation",
  "steering"
];
const PAGES = process.argv.length > 2 ? process.argv.slice(2) : ALL;
const OUT = join(ROOT, "docs", "screenshots");
mkdirSync(OUT, {recursive: true});

const site = await buildSiteCopy();
const server = await serveStatic(site.dir);
const browser = await launchBrowser({viewport: {width: 1100, height: 1500}, webgpu: false});
try {
  for (const name of PAGES) {
    const {page} = await browser.open(`${server.origin}/${name}?backend=wasm`);
    // The "Inside the model" pages start on stories260K already (their Load button is then disabled).
    if ((await page.locator("form.lmw-model input").inputValue()) !== "stories260K") {
      await page.locator("form.lmw-model input").fill("stories260K");
      await page.locator("form.lmw-model button").click();
    }
    await page.locator("form.lmw-live input[type=checkbox]").check();
    await page.waitForSelector(".lmw-status[data-status=ready]", {timeout: 60_000});
    await page.waitForLoadState("networkidle");
    await page.waitForFunction(
      () => document.querySelectorAll("observablehq-loading, .observablehq--running").length === 0
    );
    // The model answers from its worker: wait until its forward-pass count holds still, then for the views.
    await quietModel(page);
    await page.waitForFunction(
      () => document.querySelectorAll("observablehq-loading, .observablehq--running").length === 0
    );
    await page.waitForTimeout(500);
    await page.screenshot({path: join(OUT, `${name}.png`)});
    console.log(`docs/screenshots/${name}.png`);
  }
} finally {
  await browser.close();
  await server.close();
  await site.remove();
}
