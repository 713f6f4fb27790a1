/**
 * axios, loaded from its single-file CommonJS build. Its ES module entry is dozens of files,
 * and under tsx every ES module is a round trip to tsx's loader thread: the one file loads in
 * a fraction of the time (BENCHMARKS.md).
 * Same API and types; its package exports this build for `require`.
 */
import { createRequire } from "node:module";
import type AxiosStatic from "axios";

export const axios = createRequire(import.meta.url)("axios") as typeof AxiosStatic;
