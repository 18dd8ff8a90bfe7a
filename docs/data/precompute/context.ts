// Page 4, precomputed for each site model: the autoregressive check at every layer for the two default
// prompts, the cosine similarity of "break" across every layer in the lecture's three sentences, and the
// exercise sentence's every token against those three.
import {CONTEXT_DEFAULTS, type ContextTrace, checkAtLayer, contextTrace, exerciseSimilarity, wordIn, wordSimilarity, wordVectorHead} from "../../../src/analysis/context.js";
import {clampIndex} from "../../../src/analysis/hooks.js";
import {precompute} from "../site-models.js";

const round = (v: number) => Number(v.toPrecision(6));

export default precompute({
  file: "context.json",
  head: {defaults: CONTEXT_DEFAULTS},
  async compute(model) {
  const layers = model.config.numLayers;
  const [checkA, checkB] = [await contextTrace(model, CONTEXT_DEFAULTS.checkA), await contextTrace(model, CONTEXT_DEFAULTS.checkB)];
  const checkC = await contextTrace(model, CONTEXT_DEFAULTS.checkC);
  const sentences: ContextTrace[] = [];
  for (const s of CONTEXT_DEFAULTS.sentences) sentences.push(await contextTrace(model, s));
  const exercise = await contextTrace(model, CONTEXT_DEFAULTS.exercise);
  const word = CONTEXT_DEFAULTS.word;
  return {
    numLayers: layers,
    layer: clampIndex(CONTEXT_DEFAULTS.layer, layers),
    check: {
      piecesA: checkA.pieces,
      piecesB: checkB.pieces,
      piecesC: checkC.pieces,
      // word[layer] = the first 20 numbers of "Paris" after the layer, in prompts A, B and C.
      word: Array.from({length: layers}, (_, l) =>
        [checkA, checkB, checkC].map((t) => {
          const head = wordVectorHead(t, CONTEXT_DEFAULTS.checkWord, l);
          return {...head, values: head.values.map(round)};
        })
      ),
      layers: Array.from({length: layers}, (_, l) => {
        const c = checkAtLayer(checkA, checkB, l);
        return {...c, positions: c.positions.map((p) => ({...p, maxAbsDiff: round(p.maxAbsDiff)}))};
      })
    },
    sentences: sentences.map((t) => ({sentence: t.sentence, pieces: t.pieces, word: wordIn(t, word)})),
    similarity: wordSimilarity(sentences, word).map((p) => ({...p, similarity: round(p.similarity)})),
    exercise: {
      sentence: exercise.sentence,
      pieces: exercise.pieces,
      word: wordIn(exercise, CONTEXT_DEFAULTS.exerciseWord),
      // byPosition[t][i][layer]: position t's similarity to "break" in lecture sentence i + 1, layer by layer.
      byPosition: exercise.pieces.map((_, t) => {
        const points = exerciseSimilarity(exercise, t, sentences, word);
        return sentences.map((_, i) => points.filter((p) => p.b === String(i + 1)).map((p) => round(p.similarity)));
      })
    }
  };
}
});
