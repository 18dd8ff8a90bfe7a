/**
 * Hub repository ids and revisions, checked with the Hub's own rules before they go into a URL or a cache path.
 * Universal: the same check runs in Node and in the browser.
 *
 * The Hub (huggingface_hub's `validate_repo_id`) takes `name` or `namespace/name`, each part made of letters,
 * digits, "-", "_" and ".", starting and ending with a letter, digit or "_", with no "--" or "..", at most 96
 * characters long. Anything else — `a/b/../..`, `../../etc/passwd`, `org/name?x=1` — is not an id, and is refused
 * rather than sent to the Hub or joined onto a folder.
 */
import {HubError} from "./errors.js";

const PART = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$/;
export const MAX_ID_PART = 96;

/** `id` when it is a Hub repository id; a HubError ("invalid-id") saying what is wrong otherwise. */
export function checkHubId(id: string): string {
  if (typeof id !== "string") throw new HubError("invalid-id", `a Hub model id must be a string, got ${typeof id}`);
  const shown = JSON.stringify(id.length > 120 ? id.slice(0, 120) + "…" : id);
  const refuse = (why: string) =>
    new HubError(
      "invalid-id",
      `${shown} is not a Hub model id (${why}); ids look like gpt2 or HuggingFaceTB/SmolLM2-135M`
    );
  if (id === "") throw refuse("it is empty");
  const parts = id.split("/");
  if (parts.length > 2) throw refuse(`it has ${parts.length - 1} "/", an id has at most one`);
  for (const part of parts) {
    if (part === "") throw refuse(`it has an empty part`);
    if (part.length > MAX_ID_PART)
      throw refuse(`a part is ${part.length} characters long, the Hub allows ${MAX_ID_PART}`);
    if (part.includes("..") || part.includes("--")) throw refuse(`"${part}" contains ".." or "--"`);
    const bad = part.match(/[^A-Za-z0-9_.-]/u);
    if (bad) throw refuse(`${JSON.stringify(bad[0])} is not allowed: letters, digits, "-", "_" and "." only`);
    if (!PART.test(part)) throw refuse(`"${part}" starts or ends with "-" or "."`);
  }
  return id;
}

/** A branch, tag or commit (`main`, `v2`, `refs/pr/1`, a sha), checked as the Hub would before it names a folder. */
export function checkRevision(revision: string): string {
  if (
    typeof revision !== "string" ||
    revision === "" ||
    revision.length > 255 ||
    /[^A-Za-z0-9_.\-/]/.test(revision) ||
    revision.split("/").some((p) => p === "" || p === "." || p === "..")
  )
    throw new HubError(
      "invalid-id",
      `${JSON.stringify(revision)} is not a revision (a branch, tag or commit such as main, v1.0 or refs/pr/1)`
    );
  return revision;
}

/** A file path inside a repository with each segment URL-encoded ("sub dir/a#b.json" → "sub%20dir/a%23b.json"). */
export function encodeFilePath(file: string): string {
  return file.split("/").map(encodeURIComponent).join("/");
}
