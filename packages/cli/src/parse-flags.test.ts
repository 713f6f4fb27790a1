import { describe, expect, it } from "vitest";
import { nearestFlag, parseFlags } from "./parse-flags.ts";
import { UsageError } from "./usage-error.ts";

const options = {
  param: { type: "string", short: "p", multiple: true },
  experiment: { type: "string" },
  json: { type: "boolean" },
  "no-cache": { type: "boolean" },
} as const;
const context = { command: "run", help: "  -p, --param NAME=VALUE   a param\n      --experiment NAME   where" };

function messageOf(args: string[]): string {
  try {
    parseFlags(args, options, context);
  } catch (error) {
    expect(UsageError.is(error)).toBe(true);
    return (error as Error).message;
  }
  throw new Error(`expected ${args.join(" ")} to be refused`);
}

describe("parseFlags", () => {
  it("parses known flags and positionals as parseArgs does", () => {
    const { values, positionals } = parseFlags(["flow.ts", "-p", "a=1", "--param=b=2", "--experiment", "x", "--json"], options, context);
    expect(values).toEqual({ param: ["a=1", "b=2"], experiment: "x", json: true });
    expect(positionals).toEqual(["flow.ts"]);
  });

  it("an unknown flag: what was given, the flags the command knows, the nearest one, and where the help is", () => {
    const message = messageOf(["flow.ts", "--jsn"]);
    expect(message).toBe(
      "Unknown option '--jsn' for cairn run; did you mean --json? cairn run takes: -p/--param, --experiment, --json, --no-cache, -h/--help. " +
        "Run `cairn help run` (or `cairn run --help`) for what each flag does.",
    );
    expect(messageOf(["-x"])).toMatch(/^Unknown option '-x' for cairn run\. cairn run takes: /);
  });

  it("a flag without its value names the flag and the value it takes", () => {
    expect(messageOf(["--experiment"])).toMatch(/^Expected a value after `--experiment` \(--experiment NAME\), got none\. Run `cairn help run`/);
    expect(messageOf(["-p"])).toMatch(/^Expected a value after `-p` \(--param NAME=VALUE\), got none\./);
    expect(messageOf(["--experiment", "--json"])).toMatch(/got none: the next argument, `--json`, is a flag\./);
    expect(messageOf(["--experiment", "-nope"])).toMatch(/got `-nope`, which reads as a flag\. Write --experiment=-nope to pass a value that starts with "-"\./);
    expect(parseFlags(["--experiment=-nope"], options, context).values.experiment).toBe("-nope");
  });

  it("a negative number after a space is the flag's value, for the command to check against its range: no flag is named by a digit", () => {
    // Before: "reads as a flag. Write --experiment=-1", which the command then refused for its range anyway (`cairn runs -n -1`).
    const { values, positionals } = parseFlags(["flow.ts", "--experiment", "-1", "-p", "-2.5d", "--json"], options, context);
    expect(values).toEqual({ experiment: "-1", param: ["-2.5d"], json: true });
    expect(positionals).toEqual(["flow.ts"]);
    expect(messageOf(["--experiment", "-1", "--experiment", "-2"])).toMatch(/^Expected `--experiment` once, got it twice \(`-1`, `-2`\)/);
  });

  it("a value given to a switch is refused", () => {
    expect(messageOf(["--json=yes"])).toMatch(/^Expected `--json` alone \(it is a switch and takes no value\), got `--json=yes`\./);
  });
});

describe("nearestFlag", () => {
  it.each([
    ["--jsno", "--json"],
    ["--experimnet", "--experiment"],
    ["--exp", "--experiment"],
    ["--no-cach", "--no-cache"],
    ["--PARAM", "--param"],
  ])("%s is near %s", (given, near) => {
    expect(nearestFlag(given, options)).toBe(near);
  });

  it.each(["--bogus", "--x", "-z", "--"])("%s is near nothing", (given) => {
    expect(nearestFlag(given, options)).toBeUndefined();
  });
});

describe("parseFlags, empty values", () => {
  it.each([[["--experiment", ""]], [["--experiment="]], [["--experiment", " \t"]], [["-p", ""]], [["--param="]]])("%j is refused, naming the flag", (args) => {
    expect(messageOf(args)).toMatch(/^Expected `--(experiment NAME|param NAME=VALUE)` to have a value, got an empty one \(`-{1,2}(experiment|p|param)[= ]".*"`\), often a shell variable that is not set\./);
  });
});
