/**
 * The modules a command loads before it does its work (`--import FILE`, `CAIRN_IMPORT`): a plug-in
 * that registers a tracker scheme (`registerTrackerScheme`) is loaded by the flow that imports it,
 * which `cairn runs`, `show`, `report` and `cache` never load, so a run recorded through it could
 * not be listed. Each module is loaded as a flow file is (compiled like one, or through tsx), and
 * before the flow, so that the flow's own import of it finds it loaded.
 */
import { UsageError } from "./usage-error.ts";
import { type FlowImporter, importFlowModule } from "./load-flow.ts";

/** The flag that names a module to load; every command takes it. */
export const IMPORT_FLAG = "--import";

/**
 * `args` without their `--import FILE` and `--import=FILE` pairs, and the files those name, in
 * order. Taken out before a command reads its flags, so every command accepts it alike.
 */
export function takeImports(args: readonly string[]): { args: string[]; files: string[] } {
  const rest: string[] = [];
  const files: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    // `--` ends the flags (as for every other flag): what follows is the command's, as given.
    if (arg === "--") {
      rest.push(...args.slice(i));
      break;
    }
    if (arg.startsWith(`${IMPORT_FLAG}=`)) {
      files.push(checkedFile(arg.slice(IMPORT_FLAG.length + 1), arg));
    } else if (arg === IMPORT_FLAG) {
      const next = args[i + 1];
      // A flag next is a forgotten file: `--import --json` would have loaded a module named --json.
      if (next === undefined || next.startsWith("-")) throw new UsageError(`Expected a module file after ${IMPORT_FLAG}, got ${next === undefined ? "nothing" : `"${next}"`}. Name the module to load, e.g. \`${IMPORT_FLAG} ./tracker.ts\`.`);
      files.push(checkedFile(next, arg));
      i++;
    } else {
      rest.push(arg);
    }
  }
  return { args: rest, files };
}

/** `CAIRN_IMPORT`: module files separated by commas, blanks left out. */
export function importsFromEnv(env: NodeJS.ProcessEnv): string[] {
  return (env.CAIRN_IMPORT ?? "")
    .split(",")
    .map((file) => file.trim())
    .filter((file) => file !== "");
}

function checkedFile(file: string, given: string): string {
  if (file === "") throw new UsageError(`Expected a module file after ${IMPORT_FLAG}, got "${given}". Name the module to load, e.g. \`${IMPORT_FLAG} ./tracker.ts\`.`);
  return file;
}

/**
 * Loads each module once, in order: `CAIRN_IMPORT`'s, then the flags'. A module that is missing
 * or throws is a `FlowFileError` naming it and where it was given, before the command does anything.
 */
export async function loadImports(fromEnv: readonly string[], fromFlags: readonly string[], importFlow: FlowImporter | undefined): Promise<void> {
  const seen = new Set<string>();
  const given = [...fromEnv.map((file) => ({ file, source: "CAIRN_IMPORT" })), ...fromFlags.map((file) => ({ file, source: IMPORT_FLAG }))];
  for (const { file, source } of given) {
    if (seen.has(file)) continue;
    seen.add(file);
    await importFlowModule(file, { importFlow, noun: `module`, source });
  }
}
