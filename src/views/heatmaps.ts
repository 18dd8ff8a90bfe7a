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

/** The attention color scale: shared by the heatmap, its legend and the small multiples. */
const ATTENTION_COLOR = {type: "linear", scheme: "blues", domain: [0, 1], label: "attention"} as const;

let attentionLegend: Element | undefined;
/** The attention legend (a color ramp): drawn once, then cloned (drawing the ramp is the costliest part of a redraw). */
function legendCopy(): Node {
  return (attentionLegend ??= Plot.legend({color: ATTENTION_COLOR}) as Element).cloneNode(true);
}

/**
 * One head's pattern: rows are the queries (the token that looks), columns the keys (the token looked at);
 * darker is more attention. Positions index the axes, so repeated tokens keep their own row. The cells are one
 * Plot.raster (a canvas image) with thin white rules between them; the weights ≥ .1 are printed on top (up to 24
 * tokens) and a pointer tip names the cell under the mouse.
 */
export function attentionHeatmap(
  cells: readonly AttentionCell[],
  {pieces, title, width}: AttentionHeatmapOptions
): SVGSVGElement | HTMLElement {
  const n = pieces.length;
  const labels = pieces.map((p) => tokenLabel(p));
  const label = (i: number) => labels[Math.floor(i)] ?? tokenLabel("");
  const size = Math.max(260, Math.min(width ?? 640, 28 * n + 120));
  // The pattern as an n × n grid, row q = query q (NaN where there is no cell: transparent).
  const grid = new Float64Array(n * n).fill(NaN);
  for (const c of cells) if (c.query < n && c.key < n) grid[c.query * n + c.key] = c.weight;
  const centers = range(n).map((i) => i + 0.5);
  const lines = range(n + 1);
  const printed = n <= 24 ? cells.filter((d) => d.weight >= 0.1) : [];
  const figure = Plot.plot({
    title,
    figure: true,
    width: size,
    height: size - 20,
    marginLeft: 90,
    marginBottom: 80,
    x: {
      type: "linear",
      domain: [0, n],
      ticks: centers,
      tickFormat: label,
      tickRotate: -90,
      label: "key (attended to) →"
    },
    y: {type: "linear", domain: [0, n], reverse: true, ticks: centers, tickFormat: label, label: "↓ query (attending)"},
    color: ATTENTION_COLOR,
    marks: [
      Plot.raster(grid, {
        width: n,
        height: n,
        x1: 0,
        y1: 0,
        x2: n,
        y2: n,
        imageRendering: "pixelated"
      } as Plot.RasterOptions),
      n <= 48 ? Plot.ruleX(lines, {stroke: "white", strokeWidth: 1.5}) : null,
      n <= 48 ? Plot.ruleY(lines, {stroke: "white", strokeWidth: 1.5}) : null,
      Plot.text(printed, {
        x: (d: AttentionCell) => d.key + 0.5,
        y: (d: AttentionCell) => d.query + 0.5,
        text: (d: AttentionCell) => d.weight.toFixed(2).replace(/^0/, ""),
        fill: (d: AttentionCell) => (d.weight > 0.55 ? "white" : "black"),
        fontSize: 9
      }),
      Plot.tip(
        cells,
        Plot.pointer({
          x: (d: AttentionCell) => d.key + 0.5,
          y: (d: AttentionCell) => d.query + 0.5,
          title: (d: AttentionCell) =>
            `${labels[d.query]} (position ${d.query}) → ${labels[d.key]} (position ${d.key})\nweight ${d.weight.toFixed(4)}`
        })
      )
    ]
  });
  // The legend where Plot puts it (after the title, before the plot), from the cache.
  const svg = figure.querySelector(":scope > svg");
  if (svg) figure.insertBefore(legendCopy(), svg);
  return figure;
}

export interface HeadGridOptions {
  pieces: readonly string[];
  columns?: number;
  width?: number;
}

/** The class of the small multiples' element; `headOutline` styles its heads by `data-head`. */
export const HEAD_GRID_CLASS = "lmw-heads";

/**
 * Every head of a layer, side by side: small multiples with a shared color scale, drawn as ONE Plot.raster (a
 * canvas image of all the heads, laid out in a grid with gaps) instead of thousands of SVG rects. It does not
 * depend on the chosen head: each head's frame, outline and label carry `data-head`, and `headOutline(head)`
 * outlines one by a CSS rule, so a head change redraws nothing here. Hovering a head names its strongest link
 * (a `<title>`); the numbers are on the single-head view.
 */
export function attentionHeads(
  cells: readonly AttentionCell[],
  {pieces, columns = 5, width = 900}: HeadGridOptions
): SVGSVGElement | HTMLElement {
  const n = pieces.length;
  let heads = 0;
  for (const c of cells) if (c.head >= heads) heads = c.head + 1;
  const cols = Math.max(1, Math.min(columns, heads));
  const rows = Math.ceil(heads / cols);
  const margin = 10;
  const inner = Math.floor((width - 20) / cols) * cols;
  // The mosaic, in token units: a head is n × n, then a gap (wider below a row, where the next labels go).
  const gapX = Math.max(1, Math.round(n / 12));
  const mosaicWidth = cols * n + (cols - 1) * gapX;
  const unit = inner / mosaicWidth; // pixels per token
  const gapY = Math.max(gapX, Math.ceil(22 / unit));
  const mosaicHeight = rows * n + (rows - 1) * gapY;
  const grid = new Float64Array(mosaicWidth * mosaicHeight).fill(NaN); // NaN: transparent
  const left = (h: number) => (h % cols) * (n + gapX);
  const top = (h: number) => Math.floor(h / cols) * (n + gapY);
  // Per head: where it sits and its strongest query → key link (what a hover names).
  const boxes = Array.from({length: heads}, (_, head) => ({
    head,
    x1: left(head),
    y1: top(head),
    x2: left(head) + n,
    y2: top(head) + n,
    query: 0,
    key: 0,
    weight: -1
  }));
  for (const c of cells) {
    grid[(top(c.head) + c.query) * mosaicWidth + left(c.head) + c.key] = c.weight;
    const b = boxes[c.head];
    if (c.weight > b.weight) ((b.query = c.query), (b.key = c.key), (b.weight = c.weight));
  }
  type Box = (typeof boxes)[number];
  /** Tags each rendered element (rect, text) with its head: they come in the order of the rendered index. */
  const tagged: Plot.RenderFunction = (index, scales, values, dimensions, context, next) => {
    const node = next!(index, scales, values, dimensions, context);
    node
      ?.querySelectorAll(":scope > rect, :scope > text")
      .forEach((el, i) => el.setAttribute("data-head", String(boxes[index[i]].head)));
    return node;
  };
  const describe = (b: Box) =>
    `head ${b.head}: strongest ${tokenLabel(pieces[b.query] ?? "")} (${b.query}) → ${tokenLabel(pieces[b.key] ?? "")} (${b.key}), weight ${b.weight.toFixed(2)}`;
  const svg = Plot.plot({
    width: inner + 2 * margin,
    height: Math.round(mosaicHeight * unit) + 20 + margin,
    marginLeft: margin,
    marginRight: margin,
    marginTop: 20,
    marginBottom: margin,
    x: {type: "linear", domain: [0, mosaicWidth], axis: null},
    y: {type: "linear", domain: [0, mosaicHeight], reverse: true, axis: null},
    color: ATTENTION_COLOR,
    marks: [
      Plot.raster(grid, {
        width: mosaicWidth,
        height: mosaicHeight,
        x1: 0,
        y1: 0,
        x2: mosaicWidth,
        y2: mosaicHeight,
        imageRendering: "pixelated"
      } as Plot.RasterOptions),
      // Each head's frame; its (invisible) fill catches the hover for the title.
      Plot.rect(boxes, {
        x1: "x1",
        y1: "y1",
        x2: "x2",
        y2: "y2",
        stroke: "#ccc",
        fill: "white",
        fillOpacity: 0,
        title: describe,
        render: tagged
      }),
      // Every head's outline, hidden until `headOutline` shows the chosen one.
      Plot.rect(boxes, {
        x1: "x1",
        y1: "y1",
        x2: "x2",
        y2: "y2",
        stroke: "orange",
        strokeWidth: 3,
        strokeOpacity: 0,
        fill: "none",
        inset: -3,
        className: "lmw-head-outline",
        render: tagged
      }),
      Plot.text(boxes, {
        x: "x1",
        y: "y1",
        dy: -8,
        textAnchor: "start",
        text: (b: Box) => `head ${b.head}`,
        className: "lmw-head-label",
        render: tagged
      })
    ]
  });
  svg.classList.add(HEAD_GRID_CLASS);
  return svg;
}

/**
 * The chosen head's outline on every `attentionHeads` element: a `<style>` rule on `data-head`, so moving the
 * head slider re-renders no plot. Display it once per head (a cell of its own).
 */
export function headOutline(head: number | undefined): HTMLStyleElement {
  const style = document.createElement("style");
  if (head !== undefined && Number.isInteger(head)) {
    style.textContent =
      `.${HEAD_GRID_CLASS} .lmw-head-outline > [data-head="${head}"] { stroke-opacity: 1; }\n` +
      `.${HEAD_GRID_CLASS} .lmw-head-label > [data-head="${head}"] { font-weight: bold; fill: darkorange; }\n`;
  }
  return style;
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
export function matrixHeatmap(
  d: Downsampled,
  {xLabel, yLabel, width = 640, height, title}: MatrixHeatmapOptions = {}
): SVGSVGElement | HTMLElement {
  const aspect = d.sourceRows / d.sourceCols;
  const h = height ?? Math.round(Math.max(160, Math.min(520, (width - 80) * aspect + 60)));
  return Plot.plot({
    title,
    width,
    height: h,
    marginLeft: 60,
    x: {domain: [0, d.sourceCols], label: xLabel ?? "column →"},
    y: {domain: [0, d.sourceRows], reverse: true, label: yLabel ?? "↓ row"},
    // Say what the colour is: a block's average is much closer to 0 than the weights it averages, so a legend
    // labelled "value" next to the weights' min and max would mislead.
    color: {
      type: "linear",
      scheme: "rdbu",
      reverse: true,
      domain: symmetricDomain(d.data),
      legend: true,
      label: d.blockRows * d.blockCols > 1 ? `average of each ${d.blockRows} × ${d.blockCols} block` : "weight"
    },
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
export function activationHeatmap(
  d: Downsampled,
  {pieces, title, width = 460, domain}: ActivationHeatmapOptions
): SVGSVGElement | HTMLElement {
  const cells: {token: number; col: number; value: number}[] = [];
  for (let r = 0; r < d.rows; r++)
    for (let c = 0; c < d.cols; c++) cells.push({token: r, col: c * d.blockCols, value: d.data[r * d.cols + c]});
  return Plot.plot({
    title,
    width,
    height: 40 + 18 * d.rows + 50,
    marginLeft: 90,
    x: {type: "linear", domain: [0, d.sourceCols], label: "feature →"},
    y: {domain: range(d.rows), tickFormat: (i: number) => tokenLabel(pieces[i] ?? ""), label: null},
    color: {
      type: "linear",
      scheme: "rdbu",
      reverse: true,
      domain: domain ?? symmetricDomain(d.data),
      legend: true,
      label: "activation"
    },
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
