/**
 * `cairn-dag/testing`: `trackerComplianceSuite(name, makeTracker)`, the vitest suite every
 * tracker passes. Its own entry, so that flows do not load vitest (an optional peer dependency).
 * @example
 * import { trackerComplianceSuite } from "cairn-dag/testing";
 */
export * from "@cairn/core/testing";
