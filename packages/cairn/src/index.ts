/**
 * cairn-dag: the package a Cairn user installs. Everything a flow file or an app that embeds
 * Cairn imports, re-exported from @cairn/dsl, plus the `cairn` command (bin/cairn.mjs).
 * @example
 * import { flow, task } from "cairn-dag";
 */
export * from "@cairn/dsl";
