/**
 * axios, loaded from its single-file CommonJS build. Its ES module entry is 66 files, and
 * under tsx (how flows run) every ES module is a round trip to tsx's loader thread: ~290 ms
 * a process against ~120 ms for the one file, paid by every flow tracked in MLflow.
 * Same API and types; its package exports this build for `require`.
 */
import { createRequire } from "node:module";
import type AxiosStatic from "axios";

export const axios = createRequire(import.meta.url)("axios") as typeof AxiosStatic;
