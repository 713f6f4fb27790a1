import { execFileSync, spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { OptionError } from "./errors.ts";
import { booleanFromEnv, closestName, closestNames, devInstallCommand, durationMs, installCommand, retryAfterMs, shellQuote, unknownNameExpected } from "./internal.ts";

describe("closestNames and unknownNameExpected", () => {
  const ids = Array.from({ length: 200 }, (_, i) => (i ? `step-${i + 1}` : "step"));
  it("gives the few names a typo may have meant, closest first, and those that hold it", () => {
    expect(closestNames("stpe-12", ids)).toEqual(["step-12", "step-2", "step-10", "step-11", "step-13"]);
    expect(closestNames("fit", ["load", "fit-model", "refit"])).toEqual(["refit", "fit-model"]);
    expect(closestNames("zzz", ids)).toEqual([]);
  });

  it("lists every name of a short list, and of a long one only the close ones and how many there are", () => {
    expect(unknownNameExpected("a node", "lod", ["load", "fit"])).toBe('a node (did you mean "load"?): load, fit');
    expect(unknownNameExpected("a node", "stpe-12", ids, { counted: "nodes" })).toBe(
      'a node, which has 200 nodes (did you mean "step-12", "step-2", "step-10", "step-11", "step-13"?)',
    );
    expect(unknownNameExpected("a node", "zzz", ids, { counted: "nodes" })).toBe("a node, which has 200 nodes (none is close to it)");
  });
});

describe("closestName", () => {
  it("names the candidate a typo meant, a swap of neighbours being one edit, case ignored", () => {
    expect(closestName("lerning_rate", ["epochs", "learning_rate"])).toBe("learning_rate");
    expect(closestName("ALhpa", ["alpha", "beta"])).toBe("alpha");
    expect(closestName("gamma", ["alpha", "beta"])).toBeUndefined();
    expect(closestName("", ["alpha"])).toBeUndefined();
  });

  it("takes an abbreviation for its flag only when asked to", () => {
    expect(closestName("exp", ["experiment", "json"], { prefixes: true })).toBe("experiment");
    expect(closestName("exp", ["experiment", "json"])).toBeUndefined();
  });
});

describe("retryAfterMs", () => {
  it("reads seconds and HTTP dates, and nothing else", () => {
    expect(retryAfterMs("2")).toBe(2000);
    expect(retryAfterMs(new Date(Date.now() + 60_000).toUTCString())).toBeGreaterThan(50_000);
    expect(retryAfterMs("soon")).toBeUndefined();
    expect(retryAfterMs(undefined)).toBeUndefined();
  });
});

describe("durationMs", () => {
  it("reads a number and one of ms, s, m, h, d, w, any case", () => {
    expect(durationMs("500ms")).toBe(500);
    expect(durationMs("90 s")).toBe(90_000);
    expect(durationMs(" 30m ")).toBe(30 * 60_000);
    expect(durationMs("1.5h")).toBe(5_400_000);
    expect(durationMs("7D")).toBe(7 * 86_400_000);
    expect(durationMs("2w")).toBe(14 * 86_400_000);
    expect(durationMs(".5s")).toBe(500);
  });

  it("reads the long names and years only when asked to, as .cache({ ttl }) took them from ms", () => {
    expect(durationMs("2 weeks")).toBeUndefined();
    expect(durationMs("1y")).toBeUndefined();
    expect(durationMs("2 weeks", { longUnits: true })).toBe(14 * 86_400_000);
    expect(durationMs("90 secs", { longUnits: true })).toBe(90_000);
    expect(durationMs("1y", { longUnits: true })).toBe(365.25 * 86_400_000);
    expect(durationMs("3 Hours", { longUnits: true })).toBe(3 * 3_600_000);
  });

  it("reads nothing else: a bare number, a sign, an exponent, a separator, an unknown unit, or M (a month to many, not minutes)", () => {
    for (const text of ["7", "-7d", "+7d", "1e3s", "1,5d", "10mss", "one day", "d", "", "1M", "6 M", "toString", "constructor"]) {
      expect(durationMs(text), text).toBeUndefined();
      expect(durationMs(text, { longUnits: true }), text).toBeUndefined();
    }
    expect(durationMs("1m")).toBe(60_000);
    expect(durationMs("1Ms")).toBe(1);
  });
});

describe("booleanFromEnv", () => {
  it.each(["1", "true", "TRUE", "Yes", "on", " 1 "])("%j is on", (raw) => {
    expect(booleanFromEnv({ X: raw }, "X")).toBe(true);
  });

  it.each(["0", "false", "No", "OFF", "", "  "])("%j is off, and so is unset", (raw) => {
    expect(booleanFromEnv({ X: raw }, "X")).toBe(false);
    expect(booleanFromEnv({}, "X")).toBe(false);
  });

  it.each(["2", "ture", "enabled", "y"])("%j is refused, naming the variable", (raw) => {
    expect(() => booleanFromEnv({ CAIRN_CACHE_STRICT: raw }, "CAIRN_CACHE_STRICT")).toThrow(OptionError);
    expect(() => booleanFromEnv({ CAIRN_CACHE_STRICT: raw }, "CAIRN_CACHE_STRICT")).toThrow(
      `Expected \`CAIRN_CACHE_STRICT\` to be 1, true, yes or on to turn it on; 0, false, no, off or empty (or unset) to turn it off; any case, got "${raw}" (string).`,
    );
  });
});

describe("shellQuote", () => {
  const TEXTS = ["", "plain", "a/b.c,d:e=f@g%h+i-j_k", "a b", "it's", "''", "$(id)", "é", "-n", "a\nb"];
  const hasPython = spawnSync("python3", ["-c", ""]).status === 0;

  it("writes one shell word, a `'` as `'\\''` by default and as Python's shlex.quote does (`'\"'\"'`) in its style; the shell reads both back as the text", () => {
    expect(TEXTS.map((t) => shellQuote(t))).toEqual(["''", "plain", "a/b.c,d:e=f@g%h+i-j_k", "'a b'", `'it'\\''s'`, `''\\'''\\'''`, "'$(id)'", "'é'", "-n", "'a\nb'"]);
    expect(TEXTS.map((t) => shellQuote(t, { style: "python" }))).toEqual(["''", "plain", "a/b.c,d:e=f@g%h+i-j_k", "'a b'", `'it'"'"'s'`, `''"'"''"'"''`, "'$(id)'", "'é'", "-n", "'a\nb'"]);
    for (const style of ["sh", "python"] as const) {
      const line = `printf '[%s]' ${TEXTS.map((t) => shellQuote(t, { style })).join(" ")}`;
      expect(execFileSync("/bin/sh", ["-c", line], { encoding: "utf8" })).toBe(TEXTS.map((t) => `[${t}]`).join(""));
    }
  });

  it.skipIf(!hasPython)("in the python style is exactly Python's shlex.quote (what `mlflow run` logs an MLproject default as)", () => {
    const python = execFileSync("python3", ["-c", "import json, shlex, sys; print(json.dumps([shlex.quote(t) for t in json.load(sys.stdin)]))"], { input: JSON.stringify(TEXTS), encoding: "utf8" });
    expect(TEXTS.map((t) => shellQuote(t, { style: "python" }))).toEqual(JSON.parse(python));
  });
});

describe("installCommand", () => {
  const through = (agent: string) => ({ npm_config_user_agent: agent });

  it("names the package manager that started the process, npm's when none said", () => {
    expect(installCommand(["a", "@s/b"], { env: through("pnpm/10.34.9 npm/? node/v22.12.0 linux x64") })).toBe("pnpm add a @s/b");
    expect(installCommand(["a"], { env: through("yarn/1.22.22 npm/? node/v22.12.0 linux x64") })).toBe("yarn add a");
    expect(installCommand(["a"], { env: through("npm/10.9.0 node/v22.12.0 linux x64") })).toBe("npm install a");
    expect(installCommand(["a"], { env: {} })).toBe("npm install a");
  });

  it("as a dev dependency, the tsx advice's words", () => {
    expect(devInstallCommand("tsx", through("pnpm/10"))).toBe("pnpm add -D tsx");
    expect(devInstallCommand("tsx", through("yarn/4"))).toBe("yarn add -D tsx");
    expect(devInstallCommand("tsx", {})).toBe("npm install --save-dev tsx");
    expect(installCommand(["tsx"], { dev: true, env: {} })).toBe(devInstallCommand("tsx", {}));
  });
});
