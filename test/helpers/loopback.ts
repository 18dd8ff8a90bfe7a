/**
 * Vitest's global setup: the tests serve on 127.0.0.1 (a loopback Hub, the built site, the browser's pages). In a
 * fresh network namespace with no network (`unshare -rn npm test`) the loopback interface starts down; there the
 * process may bring it up, and does. Elsewhere this finds it up and does nothing.
 */
import {execFileSync} from "node:child_process";
import {connect, createServer} from "node:net";

/** Whether a connection to 127.0.0.1 goes through (binding does even when the interface is down). */
function loopbackUp(): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer((socket) => socket.end());
    server.once("error", () => resolve(false));
    server.listen(0, "127.0.0.1", () => {
      const {port} = server.address() as {port: number};
      const client = connect(port, "127.0.0.1");
      const done = (up: boolean) => (client.destroy(), server.close(() => resolve(up)));
      client.once("connect", () => done(true));
      client.once("error", () => done(false));
    });
  });
}

export default async function setup(): Promise<void> {
  if (await loopbackUp()) return;
  try {
    execFileSync("ip", ["link", "set", "lo", "up"], {stdio: "ignore"});
  } catch {
    // not allowed here: the check below says what is wrong
  }
  if (!(await loopbackUp()))
    throw new Error("the tests serve on 127.0.0.1, but the loopback interface is down and could not be brought up");
}
