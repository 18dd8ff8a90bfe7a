// Page 2's precomputed numbers, for each site model: the default prompt's tokens, logits shape, top-k next
// tokens and argmax, the distribution's line, " Paris" vs "Paris", and the same prompt with a trailing space.
import {analyseTokens, compareTrailingSpace, spaceVariants, TOKENS_DEFAULTS} from "../../../src/analysis/tokens.js";
import {precompute} from "../site-models.js";

const {prompt, word, k} = TOKENS_DEFAULTS;

export default precompute({
  file: "tokens.json",
  head: {prompt, word, k},
  async compute(model) {
    const analysis = await analyseTokens(model, prompt, {k});
    const spaced = await analyseTokens(model, prompt + " ", {k});
    return {analysis, spaced, comparison: compareTrailingSpace(analysis, spaced), word: await spaceVariants(model, word)};
  }
});
