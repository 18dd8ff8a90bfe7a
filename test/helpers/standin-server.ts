/**
 * relay/tests/serve_standin.py, started for a test file: the real Python relay with NDIF, the Hub and nnsight stood
 * in for. It prints one JSON line once ready, answers each JSON command on its stdin with one JSON line, logs the
 * relay's requests (method, path, status) on stderr, and serves until its stdin closes.
 */
import {spawn} from "node:child_process";
import {createInterface} from "node:readline";

export interface StandinServer<Ready> {
  /** Its first line: where the relay and the stand-ins listen, and what they hold. */
  ready: Ready;
  /** One command to serve_standin.py, and its answer. */
  command(what: object): Promise<any>;
  /** The relay's log so far. */
  log(): string;
  /** Closes its stdin and waits for it to exit (killed after 3 s). */
  stop(): Promise<void>;
}

export async function startStandinServer<Ready>(): Promise<StandinServer<Ready>> {
  const child = spawn("python3", ["relay/tests/serve_standin.py"], {
    // The relay reads these; the stand-ins set their own, so none from the caller's environment leaks in.
    env: {...process.env, HF_TOKEN: "", NDIF_API_KEY: "", HF_ENDPOINT: "", LMW_NDIF_HOST: ""}
  });
  let log = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (log += chunk));
  const lines: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  createInterface({input: child.stdout}).on("line", (line) =>
    waiting.length ? waiting.shift()!(line) : lines.push(line)
  );
  const nextLine = () =>
    new Promise<string>((resolve) => (lines.length ? resolve(lines.shift()!) : waiting.push(resolve)));
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code) => reject(new Error(`serve_standin.py exited (${code}) before it was ready:\n${log}`)))
  );
  exited.catch(() => undefined);
  const ready = JSON.parse(await Promise.race([nextLine(), exited])) as Ready;
  return {
    ready,
    async command(what) {
      child.stdin.write(`${JSON.stringify(what)}\n`);
      return JSON.parse(await nextLine());
    },
    log: () => log,
    async stop() {
      if (child.exitCode !== null) return;
      const exit = new Promise((resolve) => child.once("exit", resolve));
      child.stdin.end();
      const timer = setTimeout(() => child.kill(), 3000);
      await exit;
      clearTimeout(timer);
    }
  };
}
