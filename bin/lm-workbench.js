#!/usr/bin/env node
// Runs src/cli.ts through tsx, so the CLI works from a fresh `npm ci` with no build step.
import {register} from "tsx/esm/api";

// onnxruntime-node's telemetry parses the command line and crashes on a long one: off before anything loads it
// (src/node.ts's disableOrtTelemetry says more).
process.env.ORT_DISABLE_TELEMETRY ??= "1";

register();
const {main} = await import("../src/cli.js");
process.exitCode = await main(process.argv.slice(2));
