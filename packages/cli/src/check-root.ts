/**
 * `--root DIR` checked where it enters, before a flow is loaded or a store opened: the engine's
 * check of its state folder (`rootProblem`, which run() makes too), said in the flag's words
 * (a UsageError naming `--root` and the path, exit 2).
 */
import { resolve } from "node:path";
import { rootProblem, type RootUse } from "@cairn/core";
import { UsageError } from "./usage-error.ts";

/** Checks the folder `--root` names (see `rootProblem`) and resolves to its absolute path. */
export async function checkRoot(given: string, use: RootUse): Promise<string> {
  const root = resolve(given);
  const why = await rootProblem(root, use);
  if (why === undefined) return root;
  const fix =
    use === "read"
      ? "Pass --root the folder a run used (the one that holds its cache/ and experiments/), or leave --root out for .cairn in the working directory."
      : `Pass --root a folder this user can write to${use === "make" ? " (it is made when missing)" : ""}, or leave --root out for .cairn in the working directory.`;
  const can = use === "make" ? "make and write to" : use === "write" ? "write to" : "read";
  throw new UsageError(`Expected --root to be a folder Cairn can ${can}, got ${given}: ${why}. ${fix}`);
}
