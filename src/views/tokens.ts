/**
 * Labels the views and the cells share (no Plot here: the cells load Plot lazily): token labels for axes, with
 * whitespace made visible (as on the tokens page) so " is" and "is" read apart, and what a sweep cell's tip says.
 */
import {visible} from "../analysis/tokens.js";
import type {SweepCell} from "../analysis/inside-model.js";

/** " is" → "·is", "\n" → "↵"; an empty piece shows as "∅". */
export function tokenLabel(piece: string): string {
  return piece === "" ? "∅" : visible(piece);
}

/**
 * A patching or ablation cell's tip: where it is (`columnLabel` "position" or "head", with the column's label),
 * its value under `label`, the run's metric and its three most likely next tokens.
 */
export function sweepCellTitle(
  d: SweepCell,
  {columnLabel, columns, label}: {columnLabel: string; columns: readonly string[]; label: string}
): string {
  const top = d.top
    .slice(0, 3)
    .map((t) => JSON.stringify(t.token))
    .join(", ");
  return `layer ${d.layer}, ${columnLabel} ${d.index} (${columns[d.index]})\n${label}: ${d.value.toFixed(3)}\nmetric ${d.metric.toFixed(3)}; top: ${top}`;
}
