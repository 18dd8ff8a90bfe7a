// Page 1's precomputed text: the default prompt's greedy continuation by each site model (trained or random
// weights, as `weightsOrigin` says; random weights write gibberish).
import {GENERATION_DEFAULTS} from "../../../src/analysis/tokens.js";
import {precompute} from "../site-models.js";

const {prompt, maxNewTokens} = GENERATION_DEFAULTS;

export default precompute({
  file: "generation.json",
  head: {prompt, maxNewTokens},
  list: "generations",
  async compute(model) {
    // Each token with the text it adds (onToken's `text`): joined, they are the continuation, spaces and all.
    const tokens: {id: number; text: string}[] = [];
    const result = await model.generate(prompt, {maxNewTokens, onToken: ({id, text}) => tokens.push({id, text})});
    return {prompt, maxNewTokens, tokens, text: result.text, stopped: result.stopped};
  }
});
