/**
 * The values relay/tests/serve_standin.py makes its stand-in NDIF save (its formula: value i of a tensor seeded s),
 * and the view cells the workbench must draw from them: what the tests of the two Python–TypeScript seams
 * (relay-contract, ndif-snapshot) expect, computed once here.
 */
export interface StandinSeeds {
  /** The vocabulary the saved ids fall in. */
  vocab: number;
  /** Each saved tensor's seed, by name ("top_ids", "logits", …). */
  seeds: Record<string, number>;
}

export function standinValues({vocab, seeds}: StandinSeeds, piece: (id: number) => string) {
  const f32 = (s: number, i: number) => s + 0.25 * ((i * i + (s + 20) * i) % 17);
  const i32 = (s: number, i: number) => (s + 37 * i) % vocab;
  const seed = (name: string) => seeds[name];
  /** As the views round (analysis/inside-model.ts): four significant digits. */
  const round = (v: number) => Number(v.toPrecision(4));
  /** The lens's cells from the saved `top_ids` and `top_logprobs` [layers, T, k]. */
  const lensCells = (layers: number, T: number, k: number) =>
    Array.from({length: layers}, (_, layer) => layer).flatMap((layer) =>
      Array.from({length: T}, (_, position) => {
        const top = Array.from({length: k}, (_, j) => {
          const at = (layer * T + position) * k + j;
          const id = i32(seed("top_ids"), at);
          return {id, token: piece(id), prob: round(Math.exp(f32(seed("top_logprobs"), at)))};
        });
        return {layer, position, ...top[0], top};
      })
    );
  /** A sweep's cells from the saved `logits` [L, N, 2], `top_ids` and `top_logits` [L, N, top]. */
  const sweepCells = (L: number, N: number, top: number, baseline: number) =>
    Array.from({length: L * N}, (_, r) => {
      const metric = f32(seed("logits"), 2 * r) - f32(seed("logits"), 2 * r + 1);
      return {
        layer: Math.floor(r / N),
        index: r % N,
        metric: round(metric),
        value: round(metric - baseline),
        top: Array.from({length: top}, (_, j) => {
          const id = i32(seed("top_ids"), r * top + j);
          return {id, token: piece(id), logit: round(f32(seed("top_logits"), r * top + j))};
        })
      };
    });
  return {f32, i32, seed, round, lensCells, sweepCells};
}
