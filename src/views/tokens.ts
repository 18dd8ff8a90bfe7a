/** Token labels for axes: whitespace made visible (as on the tokens page), so " is" and "is" read apart. */
import {visible} from "../analysis/tokens.js";

/** " is" → "·is", "\n" → "↵"; an empty piece shows as "∅". */
export function tokenLabel(piece: string): string {
  return piece === "" ? "∅" : visible(piece);
}
