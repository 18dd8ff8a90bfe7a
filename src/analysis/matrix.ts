/** Making a large matrix small enough to draw: block averages. */

export interface Downsampled {
  rows: number;
  cols: number;
  /** Row-major values, `rows × cols`. */
  data: Float32Array;
  /** How many source rows and columns each cell averages (1 × 1: not downsampled). */
  blockRows: number;
  blockCols: number;
  /** The source shape. */
  sourceRows: number;
  sourceCols: number;
}

/**
 * A `rows × cols` matrix averaged over blocks so that neither side exceeds `max` (each side divided by the
 * smallest whole block size that fits; the last block of a side may be shorter).
 */
export function downsample(data: ArrayLike<number>, rows: number, cols: number, max = 256): Downsampled {
  if (data.length !== rows * cols) throw new Error(`${data.length} values do not make a ${rows} × ${cols} matrix`);
  const blockRows = Math.max(1, Math.ceil(rows / max));
  const blockCols = Math.max(1, Math.ceil(cols / max));
  const outRows = Math.ceil(rows / blockRows);
  const outCols = Math.ceil(cols / blockCols);
  const sum = new Float64Array(outRows * outCols);
  const count = new Uint32Array(outRows * outCols);
  for (let r = 0; r < rows; r++) {
    const base = Math.floor(r / blockRows) * outCols;
    for (let c = 0; c < cols; c++) {
      const i = base + Math.floor(c / blockCols);
      sum[i] += data[r * cols + c];
      count[i]++;
    }
  }
  const out = new Float32Array(outRows * outCols);
  for (let i = 0; i < out.length; i++) out[i] = sum[i] / count[i];
  return {rows: outRows, cols: outCols, data: out, blockRows, blockCols, sourceRows: rows, sourceCols: cols};
}

/** "each cell averages a 6 × 3 block of the 1536 × 576 matrix", or "" when nothing was averaged. */
export function downsampleNote(d: Downsampled): string {
  if (d.blockRows === 1 && d.blockCols === 1) return "";
  return `drawn at ${d.rows} × ${d.cols}: each cell averages a ${d.blockRows} × ${d.blockCols} block of the ${d.sourceRows} × ${d.sourceCols} matrix`;
}

/** The largest absolute difference between two arrays over their common length. */
export function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
