import {runBrowserBench} from "./browser.js";
const r = await runBrowserBench({quick: true});
for (const x of r.results) console.log(JSON.stringify({model: x.model, backend: x.backend, peak: x.peakRssMb, memory: x.memory, fwd: x.forward.map((f: any) => [f.tokens, Math.round(f.logitsMs), Math.round(f.allHooksMs)]), gen: x.generate.kvTokensPerS}));
