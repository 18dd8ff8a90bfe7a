/**
 * Heatmaps on Observable Plot: an attention pattern with the tokens on both axes, every head of a layer as
 * small multiples, a weight matrix (downsampled by blocks when large), and a [tokens × features] activation.
 */
import * as Plot from "@observablehq/plot";
import type {AttentionCell} from "../analysis/attention.js";
import type {Downsampled} from "../analysis/matrix.js";
import {tokenLabel} from "./tokens.js";

const range = (n: number) => Array.from({length: n}, (_, i) => i);

export interface AttentionHeatmapOptions {
  /** The tokens' display pieces (" is"), queries and keys alike. */
  pieces: readonly string[];
  title?: string;
  width?: number;
}

/**
 * One head's pattern: rows are the queries (the token that looks), columns the keys (the token looked at);
 * darker is more attention. Positions index the axes, so repeated tokens keep their own row.
 */
export function attentionHeatmap(cells: readonly AttentionCell[], {pieces, title, width}: AttentionHeatmapOptions): SVGSVGElement | HTMLElement {
  const n = pieces.length;
  const label = (i: number) => tokenLabel(pieces[i] ?? "");
  const size = Math.max(260, Math.min(width ?? 640, 28 * n + 120));
  return Plot.plot({
    title,
    width: size,
    height: size - 20,
    marginLeft: 90,
    marginBottom: 80,
    padding: 0.04,
    x: {domain: range(n), tickFormat: label, tickRotate: -90, label: "key (attended to) →"},
    y: {domain: range(n), tickFormat: label, label: "↓ query (attending)"},
    color: {type: "linear", scheme: "blues", domain: [0, 1], label: "attention", legend: true},
    marks: [
      Plot.cell(cells, {x: "key", y: "query", fill: "weight", inset: 0.5}),
      Plot.text(cells, {
        filter: (d: AttentionCell) => d.weight >= 0.1 && n <= 24,
        x: "key",
        y: "query",
        text: (d: AttentionCell) => d.weight.toFixed(2).replace(/^0/, ""),
        fill: (d: AttentionCell) => (d.weight > 0.55 ? "white" : "black"),
        fontSize: 9
      }),
      Plot.tip(cells, Plot.pointer({
        x: "key",
        y: "query",
        title: (d: AttentionCell) => `${label(d.query)} (position ${d.query}) → ${label(d.key)} (position ${d.key})\nweight ${d.weight.toFixed(4)}`
      }))
    ]
  });
}

export interface HeadGridOptions {
  pieces: readonly string[];
  columns?: number;
  width?: number;
  /** A head to outline (the one chosen above). */
  highlight?: number;
}

/** Every head of a layer, side by side: small multiples with a shared color scale. */
export function attentionHeads(cells: readonly AttentionCell[], {pieces, columns = 5, width = 900, highlight}: HeadGridOptions): SVGSVGElement | HTMLElement {
  const n = pieces.length;
  const heads = Math.max(...cells.map((c) => c.head)) + 1;
  const cols = Math.min(columns, heads);
  const rows = Math.ceil(heads / cols);
  const cell = Math.floor((width - 20) / cols);
  return Plot.plot({
    width: cell * cols + 20,
    height: cell * rows + 30,
    marginLeft: 10,
    marginRight: 10,
    marginTop: 20,
    marginBottom: 10,
    x: {domain: range(n), axis: null},
    y: {domain: range(n), axis: null},
    fx: {domain: range(cols), axis: null, padding: 0.08},
    fy: {domain: range(rows), axis: null, padding: 0.12},
    color: {type: "linear", scheme: "blues", domain: [0, 1]},
    marks: [
      Plot.frame({stroke: "#ccc"}),
      Plot.rect(highlight === undefined ? [] : [highlight], {
        fx: (d: number) => d % cols,
        fy: (d: number) => Math.floor(d / cols),
        stroke: "orange",
        strokeWidth: 3,
        inset: -3
      }),
      Plot.cell(cells, {x: "key", y: "query", fill: "weight", fx: (d: AttentionCell) => d.head % cols, fy: (d: AttentionCell) => Math.floor(d.head / cols)}),
      Plot.text(range(heads), {
        fx: (d: number) => d % cols,
        fy: (d: number) => Math.floor(d / cols),
        frameAnchor: "top-left",
        dy: -12,
        text: (d: number) => (d === highlight ? `head ${d} (chosen)` : `head ${d}`)
      }),
      Plot.tip(cells, Plot.pointer({
        x: "key",
        y: "query",
        fx: (d: AttentionCell) => d.head % cols,
        fy: (d: AttentionCell) => Math.floor(d.head / cols),
        title: (d: AttentionCell) => `head ${d.head}: ${tokenLabel(pieces[d.query])} → ${tokenLabel(pieces[d.key])}\nweight ${d.weight.toFixed(4)}`
      }))
    ]
  });
}

/** A symmetric diverging domain around 0 that holds `values`' largest magnitude. */
function symmetricDomain(values: ArrayLike<number>): [number, number] {
  let m = 0;
  for (let i = 0; i < values.length; i++) m = Math.max(m, Math.abs(values[i]));
  return [-m || -1, m || 1];
}

export interface MatrixHeatmapOptions {
  /** Axis labels, e.g. "in_features →". */
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  title?: string;
}

/** A (downsampled) matrix as a raster, blue below zero and red above; axes count the source rows and columns. */
export function matrixHeatmap(d: Downsampled, {xLabel, yLabel, width = 640, height, title}: MatrixHeatmapOptions = {}): SVGSVGElement | HTMLElement {
  const aspect = d.sourceRows / d.sourceCols;
  const h = height ?? Math.round(Math.max(160, Math.min(520, (width - 80) * aspect + 60)));
  return Plot.plot({
    title,
    width,
    height: h,
    marginLeft: 60,
    x: {domain: [0, d.sourceCols], label: xLabel ?? "column →"},
    y: {domain: [0, d.sourceRows], reverse: true, label: yLabel ?? "↓ row"},
    color: {type: "linear", scheme: "rdbu", reverse: true, domain: symmetricDomain(d.data), legend: true, label: "value"},
    marks: [
      Plot.raster(Array.from(d.data), {
        width: d.cols,
        height: d.rows,
        x1: 0,
        y1: 0,
        x2: d.sourceCols,
        y2: d.sourceRows,
        imageRendering: "pixelated"
      } as Plot.RasterOptions),
      Plot.frame({stroke: "#999"})
    ]
  });
}

export interface ActivationHeatmapOptions {
  pieces: readonly string[];
  title?: string;
  width?: number;
  /** Share one color domain between side-by-side heatmaps. */
  domain?: [number, number];
}

/** An activation [tokens × features] (columns possibly block-averaged): one row per token. */
export function activationHeatmap(d: Downsampled, {pieces, title, width = 460, domain}: ActivationHeatmapOptions): SVGSVGElement | HTMLElement {
  const cells: {token: number; col: number; value: number}[] = [];
  for (let r = 0; r < d.rows; r++) for (let c = 0; c < d.cols; c++) cells.push({token: r, col: c * d.blockCols, value: d.data[r * d.cols + c]});
  return Plot.plot({
    title,
    width,
    height: 40 + 18 * d.rows + 50,
    marginLeft: 90,
    x: {type: "linear", domain: [0, d.sourceCols], label: "feature →"},
    y: {domain: range(d.rows), tickFormat: (i: number) => tokenLabel(pieces[i] ?? ""), label: null},
    color: {type: "linear", scheme: "rdbu", reverse: true, domain: domain ?? symmetricDomain(d.data), legend: true, label: "activation"},
    marks: [
      Plot.barX(cells, {x1: "col", x2: (c: {col: number}) => c.col + d.blockCols, y: "token", fill: "value", inset: 0}),
      Plot.frame({stroke: "#999"})
    ]
  });
}

/** One shared symmetric color domain for several matrices. */
export function sharedDomain(...values: ArrayLike<number>[]): [number, number] {
  let m = 0;
  for (const v of values) m = Math.max(m, symmetricDomain(v)[1]);
  return [-m, m];
}
