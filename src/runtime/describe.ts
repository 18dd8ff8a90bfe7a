/**
 * A model described from its config and its checkpoint's headers alone — no weights read, no session:
 * what `lm-workbench inspect` prints and what the site's loaders show before any model runs.
 */
import {parameterCounts} from "../analysis/index.js";
import {architectureFor, normalizeConfig} from "../arch/index.js";
import {openCheckpoint} from "../hub/checkpoint.js";
import {type ModelSource, readJson} from "../hub/source.js";
import {checkpointWeights} from "./weights.js";

export async function describeModel(source: ModelSource) {
  const config = normalizeConfig(await readJson(source, "config.json"), `${source.id}/config.json`);
  const arch = architectureFor(config);
  const checkpoint = await openCheckpoint(source);
  if (checkpoint) checkpointWeights(arch, checkpoint); // checks every parameter's presence and shape
  const parameters = arch.parameters();
  const {raw: _raw, ...shownConfig} = config;
  return {
    config: shownConfig,
    parameters,
    counts: parameterCounts(parameters, config.numLayers),
    moduleTree: arch.moduleTree(),
    /** The checkpoint's files, or undefined where the source has no weights. */
    weightFiles: checkpoint?.files
  };
}
