/**
 * Line and bar charts of the lecture on Observable Plot: a residual vector, similarity across layers, the
 * attention/MLP parameter split, and the autoregressive check position by position.
 */
import * as Plot from "@observablehq/plot";
import type {LayerShare} from "../analysis/attention.js";
import type {PositionCheck, SimilarityPoint} from "../analysis/context.js";
import {tokenLabel} from "./tokens.js";

export interface VectorOptions {
  title?: string;
  width?: number;
  height?: number;
}

/** One token's vector, dimension by dimension: a bar per dimension (red above zero, blue below). */
export function vectorChart(
  vector: ArrayLike<number>,
  {title, width = 900, height = 220}: VectorOptions = {}
): SVGSVGElement | HTMLElement {
  const values = Array.from(vector, (value, dim) => ({dim, value}));
  return Plot.plot({
    title,
    width,
    height,
    x: {label: "dimension →", domain: [0, values.length]},
    y: {label: "value", grid: true},
    color: {type: "diverging", scheme: "rdbu", reverse: true, pivot: 0},
    marks: [
      Plot.ruleX(values, {
        x: "dim",
        y1: 0,
        y2: "value",
        stroke: "value",
        strokeWidth: Math.max(1, Math.min(4, (width - 60) / values.length))
      }),
      Plot.ruleY([0]),
      Plot.tip(
        values,
        Plot.pointerX({
          x: "dim",
          y: "value",
          title: (d: {dim: number; value: number}) => `dimension ${d.dim}: ${d.value.toFixed(4)}`
        })
      )
    ]
  });
}

export interface SimilarityOptions {
  width?: number;
  /** A layer to mark with a vertical rule. */
  layer?: number;
  /** A band of similarity to shade (an exercise's target), e.g. [0.7, 0.8]. */
  band?: readonly [number, number];
  title?: string;
}

/** Cosine similarity across layers, one line per pair of contexts. */
export function similarityChart(
  points: readonly SimilarityPoint[],
  {width = 900, layer, band, title}: SimilarityOptions = {}
): SVGSVGElement | HTMLElement {
  return Plot.plot({
    title,
    width,
    height: 340,
    marginRight: 20,
    x: {label: "layer →", tickFormat: "d", ticks: Math.min(30, new Set(points.map((p) => p.layer)).size)},
    y: {label: "cosine similarity", grid: true, nice: true},
    color: {legend: true, label: "pair of contexts"},
    marks: [
      band === undefined
        ? null
        : Plot.rectY([band], {
            y1: (b: readonly number[]) => b[0],
            y2: (b: readonly number[]) => b[1],
            fill: "#2a7d2e",
            fillOpacity: 0.12
          }),
      band === undefined
        ? null
        : Plot.text([band], {
            y: (b: readonly number[]) => b[1],
            text: () => `target ${band[0]}–${band[1]}`,
            frameAnchor: "left",
            dx: 4,
            dy: -6,
            fill: "#2a7d2e"
          }),
      layer === undefined ? null : Plot.ruleX([layer], {stroke: "orange", strokeWidth: 2, strokeDasharray: "4 3"}),
      Plot.lineY(points, {x: "layer", y: "similarity", stroke: "pair", strokeWidth: 2, marker: "circle-stroke"}),
      Plot.tip(
        points,
        Plot.pointer({
          x: "layer",
          y: "similarity",
          stroke: "pair",
          title: (p: SimilarityPoint) => `${p.pair}\nlayer ${p.layer}: ${p.similarity.toFixed(4)}`
        })
      )
    ]
  });
}

/** Attention and MLP parameters of each layer, stacked. */
export function sharesChart(
  layers: readonly LayerShare[],
  {width = 900}: {width?: number} = {}
): SVGSVGElement | HTMLElement {
  const rows = layers.flatMap((l) => [
    {layer: l.layer, part: "attention", parameters: l.attention},
    {layer: l.layer, part: "MLP", parameters: l.mlp}
  ]);
  return Plot.plot({
    width,
    height: 300,
    marginLeft: 60,
    x: {label: "layer", tickFormat: (d: number) => (layers.length > 16 && d % 2 ? "" : String(d))},
    y: {label: "parameters", grid: true, tickFormat: "s"},
    color: {domain: ["attention", "MLP"], range: ["#4e79a7", "#f28e2c"], legend: true},
    marks: [Plot.barY(rows, {x: "layer", y: "parameters", fill: "part", tip: true}), Plot.ruleY([0])]
  });
}

/**
 * The autoregressive check position by position: the tokens of the two prompts one above the other, each
 * position colored by whether its activations came out bit-identical.
 */
export function autoregressiveChart(
  positions: readonly PositionCheck[],
  {width = 900}: {width?: number} = {}
): SVGSVGElement | HTMLElement {
  const rows = positions.flatMap((p) => [
    {...p, prompt: "prompt A", token: p.tokenA},
    {...p, prompt: "prompt B", token: p.tokenB}
  ]);
  // Cells wide enough for the longest token (about 6.5 px a character at 11 px), within the page's width; a
  // token that still does not fit is cut with an ellipsis (the tip shows it whole), never drawn over its neighbours.
  const longest = Math.max(1, ...rows.map((r) => tokenLabel(r.token ?? "").length));
  const cell = Math.max(28, Math.min(12 + 6.5 * longest, (width - 90) / Math.max(1, positions.length)));
  return Plot.plot({
    width: Math.round(90 + cell * positions.length),
    height: 150,
    marginLeft: 70,
    x: {domain: positions.map((p) => p.position), label: "position →"},
    y: {domain: ["prompt A", "prompt B"], label: null},
    color: {domain: ["bit-identical", "different"], range: ["#59a14f", "#e15759"], legend: true},
    marks: [
      Plot.cell(rows, {
        x: "position",
        y: "prompt",
        fill: (d: PositionCheck) => (d.identical ? "bit-identical" : "different"),
        inset: 1.5,
        fillOpacity: 0.8
      }),
      Plot.text(rows, {
        x: "position",
        y: "prompt",
        text: (d: {token: string}) => tokenLabel(d.token ?? ""),
        fill: "white",
        fontSize: 11,
        lineWidth: (cell - 6) / 11, // in ems
        textOverflow: "ellipsis"
      }),
      Plot.tip(
        rows,
        Plot.pointer({
          x: "position",
          y: "prompt",
          title: (d: PositionCheck & {token: string}) =>
            `“${tokenLabel(d.token ?? "")}”, position ${d.position}: ${d.identical ? "bit-identical" : `differs by up to ${d.maxAbsDiff.toExponential(2)}`}`
        })
      )
    ]
  });
}

/** What a next-token bar chart needs of a candidate (analysis/tokens.ts's Candidate fits). */
export interface NextTokenBar {
  id: number;
  /** The token with its whitespace visible ("·Paris"). */
  shown: string;
  probability: number;
}

/**
 * The most likely next tokens as horizontal bars, most likely on top, each labelled with its token and id.
 * The left margin is made for the longest label, so "·observational  (39011)" is not clipped.
 */
export function nextTokenChart(
  top: readonly NextTokenBar[],
  {width = 640, format = (p: number) => `${(p * 100).toPrecision(2)}%`} = {}
): SVGSVGElement | HTMLElement {
  const label = (d: NextTokenBar) => `${d.shown}  (${d.id})`;
  // About 7 px a character at the axis' 10 px font.
  const marginLeft = Math.max(80, 10 + 7 * Math.max(0, ...top.map((d) => label(d).length)));
  return Plot.plot({
    width,
    marginLeft,
    marginRight: 60,
    height: 24 * top.length + 40,
    x: {label: "probability", grid: true, tickFormat: format},
    y: {label: null, domain: top.map(label)},
    marks: [
      Plot.barX(top, {x: "probability", y: label, fill: "steelblue"}),
      Plot.text(top, {
        x: "probability",
        y: label,
        text: (d: NextTokenBar) => format(d.probability),
        dx: 4,
        textAnchor: "start"
      }),
      Plot.ruleX([0])
    ]
  });
}
