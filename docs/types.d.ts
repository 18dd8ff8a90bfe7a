/**
 * Types for what the site's components import that ships none: htl, Observable Inputs, and Framework's own
 * standard library (`observablehq:stdlib`, resolved by Framework, not by node_modules). Only what
 * docs/components uses is declared; `npm run typecheck` reads this file (tsconfig.json includes docs/).
 */

declare module "htl" {
  /** A tagged template that parses HTML; interpolated nodes, arrays and event handlers are placed as such. */
  export function html(strings: TemplateStringsArray, ...values: unknown[]): HTMLElement;
  export function svg(strings: TemplateStringsArray, ...values: unknown[]): SVGElement;
}

declare module "@observablehq/inputs" {
  /** An input: a form element whose `value` is the input's value, and which fires "input" when it changes. */
  export type Input<T> = HTMLFormElement & {value: T};
  export function text(options?: Record<string, unknown>): Input<string>;
  export function toggle(options?: {label?: string; value?: boolean}): Input<boolean>;
}

declare module "observablehq:stdlib" {
  export const Generators: {
    /** An async generator of the values that `initialize`'s `notify` is called with; its return value disposes. */
    observe<T>(initialize: (notify: (value: T) => void) => (() => void) | void): AsyncGenerator<T>;
    /** An async generator of an input's value: now, then after each "input" event. */
    input<T>(element: EventTarget & {value: T}): AsyncGenerator<T>;
  };
}

// The page's live model, for the browser tests (set by docs/components/workbench.ts; the tests declare the same).
interface Window {
  lmw?: {model: {id: string} | undefined; runs: () => number};
}
