#!/usr/bin/env node
// Runs src/cli.ts through tsx, so the CLI works from a fresh `npm ci` with no build step.
import {register} from "tsx/esm/api";

register();
const {main} = await import("../src/cli.js");
process.exitCode = await main(process.argv.slice(2));
