// The site's copy of a model's tokenizer.json: the bytes of the local folder the model resolves to (see
// docs/data/site-models.ts). Run by Framework as `tsx tokenizer.json.ts --model=<name>`.
import {readFileSync} from "node:fs";
import {join} from "node:path";
import {parseArgs} from "node:util";
import {siteModel} from "../../data/site-models.js";

const {values} = parseArgs({options: {model: {type: "string"}}});
process.stdout.write(readFileSync(join(siteModel(values.model!).folder, "tokenizer.json")));
