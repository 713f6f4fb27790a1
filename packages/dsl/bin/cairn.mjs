#!/usr/bin/env node
// The `cairn` command. tsx is registered first so that flow files (TypeScript) and
// Cairn's own sources load without a build step.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
