/**
 * picocolors, required: its one CommonJS file, imported as an ES module, went through Node's
 * CommonJS interop (a parse of the file for its export names) at every installed command's start,
 * where no other module of the CLI needs it any more (BENCHMARKS.md, twenty-ninth session).
 * Same API and types.
 */
import { createRequire } from "node:module";
import type Picocolors from "picocolors";

export const { createColors } = createRequire(import.meta.url)("picocolors") as typeof Picocolors;
