/** Names every decoder graph shares, whatever the architecture: the logits output and the key/value cache. */

/** The logits, as nnsight names the unembedding's output. */
export const LOGITS = "lm_head.output";

/** Graph input and output names of the key/value cache. */
export const cacheNames = (layer: number) => ({
  pastKey: `past_key_values.${layer}.key`,
  pastValue: `past_key_values.${layer}.value`,
  presentKey: `present.${layer}.key`,
  presentValue: `present.${layer}.value`
});
