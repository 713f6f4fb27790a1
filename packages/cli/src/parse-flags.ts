/**
 * A command's flags, read with node:util's `parseArgs`, but with Cairn's own words for a
 * command line it refuses: an unknown flag (what was given, the flags the command knows, the
 * nearest one when it looks like a typo), a flag without its value, a value given to a switch,
 * a flag that takes one value given twice, an empty value (a script's unset `$TASK` in
 * `cache clear --task "$TASK"` would otherwise mean "every task").
 * The tokens are checked first without `strict`, so that each problem is known by what it is
 * rather than by the text of Node's message; the strict parse then types the values.
 */
import { type ParseArgsConfig, parseArgs } from "node:util";
import { closestName } from "@cairn/core";
import { UsageError } from "./usage-error.ts";

/** The flags of one command, as `parseArgs` takes them. */
export type FlagOptions = NonNullable<ParseArgsConfig["options"]>;

/** What `parseFlags` returns: parseArgs' values, typed after `options`, and the positionals. */
export type ParsedFlags<O extends FlagOptions> = ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>>;

/** Which command the flags belong to, for messages. */
export interface FlagContext {
  /** The command as typed, e.g. `run` or `cache`. */
  command: string;
  /** The command's help text: a flag's value is named as it names it (`--root DIR`). */
  help?: string;
  /** The command whose help describes these flags, when it is not `command` itself (`cache` for `cache clear`). */
  helpCommand?: string;
}

/**
 * Parses `args` (positionals allowed) against `options`. Throws UsageError, whose message says
 * what was given, what the command takes, and to run `cairn help COMMAND`.
 * @example
 * const { values, positionals } = parseFlags(["flow.ts", "--json"], { json: { type: "boolean" } }, { command: "graph" });
 */
export function parseFlags<const O extends FlagOptions>(args: string[], options: O, context: FlagContext): ParsedFlags<O> {
  const { tokens } = parseArgs({ args, options, allowPositionals: true, strict: false, tokens: true });
  // The values of each flag given so far: parseArgs keeps the last of a flag given twice without a
  // word, so a wrapper's own `--older-than 1ms` silently overrode the user's `30d`.
  const seen = new Map<string, string[]>();
  // A value after a space that starts with "-" and a digit (`-n -1`, `--older-than -1d`) is a
  // value, as no flag is named by a digit: given to the strict parse attached (`--limit=-1`), so
  // the command refuses it with the range it takes. Told to write `--limit=-1`, a user then got
  // that refusal anyway.
  const attached = new Map<number, string>();
  for (const token of tokens) {
    if (token.kind !== "option") continue;
    const spec = Object.hasOwn(options, token.name) ? options[token.name] : undefined;
    if (!spec) throw unknownFlag(token.rawName, options, context);
    const flag = `--${token.name}`;
    if (spec.type === "string") {
      const form = `${flag} ${valueName(token.name, context.help)}`;
      if (token.value === undefined) {
        throw new UsageError(`Expected a value after \`${token.rawName}\` (${form}), got none. ${helpHint(context)}`);
      }
      // `-p=n=5` is -p with the value `=n=5`: a short flag takes its value after a space, or attached without `=`.
      if (token.inlineValue && !token.rawName.startsWith("--") && token.value.startsWith("=")) {
        throw new UsageError(
          `Expected \`${token.rawName} ${valueName(token.name, context.help)}\` with its value after a space, got \`${args[token.index]}\`: a short flag takes no \`=\`. ` +
            `Write ${token.rawName} ${token.value.slice(1)} or ${flag}=${token.value.slice(1)}. ${helpHint(context)}`,
        );
      }
      // parseArgs takes the next argument as the value even when it is a flag: `--experiment --json`.
      if (!token.inlineValue && /^-\d/.test(token.value)) attached.set(token.index, `${flag}=${token.value}`);
      else if (!token.inlineValue && token.value.startsWith("-")) {
        throw new UsageError(
          isFlag(token.value, options)
            ? `Expected a value after \`${token.rawName}\` (${form}), got none: the next argument, \`${token.value}\`, is a flag. ${helpHint(context)}`
            : `Expected a value after \`${token.rawName}\` (${form}), got \`${token.value}\`, which reads as a flag. ` +
                `Write ${flag}=${token.value} to pass a value that starts with "-". ${helpHint(context)}`,
        );
      }
      // No flag takes "" for "none": read as unset, `--task ""` cleared every task's entries and
      // `--secrets ""` ran without the file. Leaving the flag out is how to say "none".
      if (token.value.trim() === "") {
        throw new UsageError(
          `Expected \`${form}\` to have a value, got an empty one (\`${token.rawName}${token.inlineValue ? "=" : " "}${JSON.stringify(token.value)}\`), ` +
            `often a shell variable that is not set. Give a value; leaving ${flag} out means ${context.command === "cache clear" && flag === "--task" ? "every task" : "its default"}. ${helpHint(context)}`,
        );
      }
      const given = [...(seen.get(token.name) ?? []), token.value];
      seen.set(token.name, given);
      if (given.length > 1 && !spec.multiple) {
        throw new UsageError(
          `Expected \`${flag}\` once, got it twice (${given.map((v) => `\`${v}\``).join(", ")}): ` +
            `only one can apply, and which one was meant cannot be told. Give ${flag} once. ${helpHint(context)}`,
        );
      }
    } else if (token.inlineValue) {
      throw new UsageError(`Expected \`${flag}\` alone (it is a switch and takes no value), got \`${args[token.index]}\`. ${helpHint(context)}`);
    }
  }
  try {
    const strictArgs = attached.size ? args.flatMap((arg, i) => (attached.has(i) ? [attached.get(i)!] : attached.has(i - 1) ? [] : [arg])) : args;
    return parseArgs({ args: strictArgs, options, allowPositionals: true, strict: true });
  } catch (error) {
    // The checks above leave parseArgs nothing to refuse; should it still, its words are kept.
    throw new UsageError(`${(error as Error).message}. ${helpHint(context)}`);
  }
}

/** Whether `arg` names one of the command's flags (`--json`, `--root=x`, `-p`), or help. */
function isFlag(arg: string, options: FlagOptions): boolean {
  const name = arg.split("=")[0]!;
  if (name === "-h" || name === "--help") return true;
  if (name.startsWith("--")) return Object.hasOwn(options, name.slice(2));
  return Object.values(options).some((spec) => spec.short === name.slice(1));
}

function unknownFlag(given: string, options: FlagOptions, context: FlagContext): UsageError {
  const known = Object.entries(options).map(([name, spec]) => (spec.short ? `-${spec.short}/--${name}` : `--${name}`));
  known.push("-h/--help");
  const near = nearestFlag(given, options);
  return new UsageError(
    `Unknown option '${given}' for cairn ${context.command}${near ? `; did you mean ${near}?` : "."} ` +
      `cairn ${context.command} takes: ${known.join(", ")}. ${helpHint(context)}`,
  );
}

/** The known long flag nearest to `given` when it is near enough to be a typo or an abbreviation. */
export function nearestFlag(given: string, options: FlagOptions): string | undefined {
  const near = closestName(given.replace(/^-+/, "").split("=")[0]!, Object.keys(options), { prefixes: true });
  return near === undefined ? undefined : `--${near}`;
}

/** How the help names a flag's value (`--root DIR` gives `DIR`); `VALUE` when it does not. */
function valueName(flag: string, help: string | undefined): string {
  const escaped = flag.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return help?.match(new RegExp(`--${escaped}[ =]([^\\s,\\]]+)`))?.[1] ?? "VALUE";
}

function helpHint(context: FlagContext): string {
  const command = context.helpCommand ?? context.command;
  return `Run \`cairn help ${command}\` (or \`cairn ${command} --help\`) for what each flag does.`;
}
