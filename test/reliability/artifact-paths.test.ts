/**
 * Class 1 of the hardening issue: no name from a task, a script, a cache entry or an MLflow
 * listing becomes a path outside the folder it belongs in. One rule (safeRelativePath), held
 * equal in the two helpers a script runs with, and used at every join; each attack here is
 * made through the real engine, a real child process and a real store.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LocalStore, UnsafePathError, safeRelativePath, taskArtifactPath } from "@cairn/core";
import { flow, task, type Artifact, type RunEvent } from "@cairn/dsl";
import { shell } from "../../packages/process/src/index.ts";
import { safeArtifactName } from "../../packages/process/src/current-task.ts";
import { VENV_PYTHON, hasVenv } from "../kinds/helpers.ts";

const scratch: string[] = [];
afterAll(async () => {
  await Promise.all(scratch.map((d) => rm(d, { recursive: true, force: true })));
});

/** A temp folder with the store three levels down, so that every `../` of an attack stays inside it. */
async function sandbox(): Promise<{ top: string; root: string }> {
  const top = await mkdtemp(join(tmpdir(), "cairn-paths-"));
  scratch.push(top);
  const root = join(top, "a", "b", "c", ".cairn");
  await mkdir(root, { recursive: true });
  return { top, root };
}

/** Every file under `dir` whose name mentions "escape", relative to `dir`. */
async function escapes(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (e.name.includes("escape")) found.push(relative(dir, join(e.parentPath, e.name)));
  }
  return found;
}

/** Names that must be refused, and the reason each must give. */
const ATTACKS: [string, RegExp][] = [
  ["../escape.txt", /climbs out with "\.\."/],
  ["a/../../escape.txt", /climbs out/],
  ["../../../../escape.txt", /climbs out/],
  ["..", /climbs out/],
  ["a\\..\\..\\escape.txt", /climbs out/],
  ["/etc/escape.txt", /absolute path/],
  ["C:\\escape.txt", /drive \("C:"\)/],
  ["C:escape.txt", /drive/],
  ["\\\\server\\share\\escape.txt", /UNC path/],
  ["//server/share/escape.txt", /UNC path/],
  ["a\u0000escape.txt", /NUL/],
  ["./escape.txt", /"\." part; use "escape.txt" instead/],
  ["a//escape.txt", /empty part/],
  ["escape/", /empty part/],
  ["", /is empty/],
];
/** Names in Cairn's own folder of each run: safe paths, refused to a task, whose file Cairn's would overwrite. */
const RESERVED = ["cairn/outputs.json", "cairn", "cairn\\error.txt", "cairn/mine/data.csv", "Cairn/outputs.json", "CAIRN"];

/** Names that must be accepted, and their normalised form. */
const FINE: [string, string][] = [
  ["data.csv", "data.csv"],
  ["reports/2024/summary.md", "reports/2024/summary.md"],
  [".hidden", ".hidden"],
  ["..dots-first", "..dots-first"],
  ["...", "..."],
  ["a\\b.txt", "a/b.txt"],
  ["with space/ümlaut:colon.txt", "with space/ümlaut:colon.txt"],
];

/** Safe paths that an MLflow server refuses or stores under another name: refused to a task (see mlflow-artifact-names.test.ts). */
const MLFLOW_UNSTORABLE = ["C#.csv", "a%20b.txt", "x%2Fy.txt", "a\tb.txt", "a\nb", "a\u001bb", "a\u007fb", "a\u0085b", "end?", "semi;", "a;?b", "d\\e%41.txt"];
/** Odd names that an MLflow server keeps as they are: a task may give them. */
const MLFLOW_STORABLE = ["sp ace.txt", "q?x.txt", "a;b", "a;/b", "100%", "pct%zz.txt", "é\u0301.txt", "日本/ü.txt", "a?b?c"];

describe("safeRelativePath, the one rule", () => {
  it.each(ATTACKS)("refuses %j with a reason, the task and the name", (name, reason) => {
    let error: unknown;
    try {
      safeRelativePath(name, { taskName: "load", source: "ctx.artifacts.write()" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UnsafePathError);
    const e = error as UnsafePathError;
    expect(e.name).toBe("UnsafePathError");
    expect(e.taskName).toBe("load");
    expect(e.artifactName).toBe(name);
    expect(e.retryable).toBe(false);
    expect(e.message).toMatch(reason);
    expect(e.message).toContain('Task "load"');
    expect(e.message).toContain(JSON.stringify(name));
    expect(e.message).toContain("ctx.artifacts.write()");
    // The name itself is refused: the message says the rule for names.
    expect(e.refused).toBe("name");
    expect(e.message).toContain("An artifact name must be a relative path inside the run's artifacts folder");
  });

  it.each(FINE)("accepts %j as %j", (name, normalised) => {
    expect(safeRelativePath(name, { source: "test" })).toBe(normalised);
  });

  it("refuses what is not a string", () => {
    for (const v of [undefined, null, 3, ["a"], { $artifact: "a" }]) {
      expect(() => safeRelativePath(v, { source: "test" })).toThrow(UnsafePathError);
    }
  });

  it("refuses a task the names an MLflow server refuses or renames, and keeps the odd names it stores as they are", () => {
    for (const name of MLFLOW_UNSTORABLE) expect(() => taskArtifactPath(name, { source: "test" }), JSON.stringify(name)).toThrow(/an MLflow server/);
    for (const name of MLFLOW_STORABLE) expect(taskArtifactPath(name, { source: "test" })).toBe(name);
    // Cairn's own names (an MLflow listing, a cache entry) keep the one rule alone.
    expect(safeRelativePath("a%20b.txt", { source: "test" })).toBe("a%20b.txt");
  });

  it("is the rule of both script helpers (a task's names: taskArtifactPath): TypeScript's currentTask and Python's cairn_task", () => {
    const python = hasVenv ? VENV_PYTHON : "python3";
    const names = [...ATTACKS.map(([n]) => n), ...FINE.map(([n]) => n), ...RESERVED, "cairn-notes/a.txt", "x/cairn/a.txt", ...MLFLOW_UNSTORABLE, ...MLFLOW_STORABLE];
    const helper = join(import.meta.dirname, "../../packages/process/python");
    const program = `import json, sys\nsys.path.insert(0, ${JSON.stringify(helper)})\nimport cairn_task\nout = []\nfor n in json.load(sys.stdin):\n    try:\n        out.append(cairn_task._safe(n))\n    except ValueError:\n        out.append(None)\nprint(json.dumps(out))`;
    const fromPython = JSON.parse(execFileSync(python, ["-c", program], { input: JSON.stringify(names), encoding: "utf8" })) as (string | null)[];
    const attempt = (f: (n: string) => string) => (n: string) => {
      try {
        return f(n);
      } catch {
        return null;
      }
    };
    const fromEngine = names.map(attempt((n) => taskArtifactPath(n, { source: "test" })));
    expect(names.map(attempt(safeArtifactName))).toEqual(fromEngine);
    expect(fromPython).toEqual(fromEngine);
  });
});

describe("names from a task (ctx.artifacts)", () => {
  const methods = {
    write: (ctx: { artifacts: { write(n: string, d: string): Promise<Artifact> } }, name: string) => ctx.artifacts.write(name, "pwned"),
    path: async (ctx: { artifacts: { path(n: string): Promise<string> } }, name: string) => {
      const p = await ctx.artifacts.path(name);
      await writeFile(p, "pwned");
      return p;
    },
    file: async (ctx: { artifacts: { file(n: string): Artifact } }, name: string) => {
      const a = ctx.artifacts.file(name);
      await mkdir(join(a.path, ".."), { recursive: true });
      await writeFile(a.path, "pwned");
      return a;
    },
  };

  /** One task `writer-<i>` per name, each writing its name through ctx.artifacts.<method>; the flow's result. */
  const writeEach = async (method: keyof typeof methods, names: string[], root: string) => {
    const t = task("writer")
      .input<{ name: string }>()
      .run(async ({ name }, ctx) => ({ result: await methods[method](ctx as never, name) }));
    const f = flow("attack").build(() => {
      const out: Record<string, unknown> = {};
      names.forEach((name, i) => {
        out[`o${i}`] = t({ name }, { id: `writer-${i}` }).result;
      });
      return out;
    });
    return (await f.run({ root, cache: false, failurePolicy: "continue" })).wait();
  };

  it.each(Object.keys(methods) as (keyof typeof methods)[])("ctx.artifacts.%s refuses every attack, and nothing is written anywhere", async (method) => {
    const { top, root } = await sandbox();
    // For path(), "" is the folder itself (see the next test); every other attack holds for all three.
    const names = ATTACKS.map(([n]) => n)
      .filter((n) => method !== "path" || n !== "")
      .concat(`${top}/escape-absolute.txt`);
    const result = await writeEach(method, names, root);
    expect(result.status).toBe("failed");
    names.forEach((name, i) => {
      const r = result.tasks[`writer-${i}`]!;
      expect(r.status, name).toBe("failed");
      expect(r.error?.name, name).toBe("UnsafePathError");
      expect(r.error?.message).toContain(`Task "writer-${i}"`);
      expect(r.error?.message).toContain(JSON.stringify(name));
      expect(r.error?.message).toContain(`ctx.artifacts.${method}()`);
      expect(r.attempts).toBe(1); // refusing is not worth a retry
    });
    expect(await escapes(top)).toEqual([]);
  });

  it.each(Object.keys(methods) as (keyof typeof methods)[])("ctx.artifacts.%s refuses names in cairn/, where Cairn's own record of the run would overwrite them", async (method) => {
    const { root } = await sandbox();
    const result = await writeEach(method, RESERVED, root);
    RESERVED.forEach((name, i) => {
      const r = result.tasks[`writer-${i}`]!;
      expect(r.status, name).toBe("failed");
      expect(r.error?.name, name).toBe("UnsafePathError");
      expect(r.error?.message).toContain(`is in "cairn/", the folder of Cairn's own record of the run`);
      expect(r.error?.message).toContain(`ctx.artifacts.${method}()`);
    });
  });

  it("still writes plain and nested names, and path() with no name is the folder itself", async () => {
    const { root } = await sandbox();
    const t = task("ok").run(async (_, ctx) => {
      const dir = await ctx.artifacts.path();
      await writeFile(join(dir, "by-hand.txt"), "1");
      return { a: await ctx.artifacts.write("x/y.txt", "2"), b: ctx.artifacts.file("by-hand.txt"), c: await ctx.artifacts.write("w\\z.txt", "3") };
    });
    const out = await (
      await flow("ok")
        .build(() => {
          const n = t({});
          return { a: n.a, b: n.b, c: n.c };
        })
        .run({ root, cache: false })
    ).outputs();
    expect(out.a.artifactPath).toBe("x/y.txt");
    expect(out.c.artifactPath).toBe("w/z.txt");
    expect(out.c.path).toBe(join(out.a.path, "..", "..", "w", "z.txt"));
    expect(await readFile(out.b.path, "utf8")).toBe("1");
  });

  it("writes a name as long as the file system takes (255 bytes), with nothing left beside it", async () => {
    const { root } = await sandbox();
    const name = `${"n".repeat(251)}.txt`;
    const t = task("long").run(async (_, ctx) => ({ a: await ctx.artifacts.write(name, "long") }));
    const out = await (await flow("long").build(() => ({ a: t({}).a })).run({ root, cache: false })).outputs();
    expect(await readFile(out.a.path, "utf8")).toBe("long");
    expect((await readdir(join(out.a.path, ".."))).filter((f) => f !== "cairn")).toEqual([name]);
  });
});

describe("names from a script (CAIRN_OUTPUTS markers)", () => {
  it("refuses a marker that climbs out, by / or by \\, even when the file it names exists", async () => {
    const { root } = await sandbox();
    const attacks = ["../escape.txt", "a\\..\\..\\escape.txt", "/etc/hostname", "C:\\escape.txt"];
    const f = flow("script-attack").build(() => {
      const out: Record<string, unknown> = {};
      attacks.forEach((name, i) => {
        // The script makes the file the marker names, so only the name check stands in the way.
        const s = shell("emit", `(mkdir -p "$CAIRN_ARTIFACTS/a"; : > "$CAIRN_ARTIFACTS/"{name}) 2>/dev/null; printf '{"f":{"$artifact":%s}}' {json} > "$CAIRN_OUTPUTS"`).input<{
          name: string;
          json: string;
        }>();
        out[`o${i}`] = s({ name, json: JSON.stringify(name) }, { id: `emit-${i}` }).exitCode;
      });
      return out;
    });
    const result = await (await f.run({ root, cache: false, failurePolicy: "continue" })).wait();
    attacks.forEach((name, i) => {
      const r = result.tasks[`emit-${i}`]!;
      expect(r.status, name).toBe("failed");
      expect(r.error?.name, name).toBe("UnsafePathError");
      expect(r.error?.message).toContain(`Task "emit-${i}"`);
      expect(r.error?.message).toContain('script output "f"');
    });
  });
});

describe("names from a script, in cairn/", () => {
  it("refuses a marker for cairn/outputs.json, which Cairn's manifest would overwrite", async () => {
    const { root } = await sandbox();
    const s = shell("emit", `mkdir -p "$CAIRN_ARTIFACTS/cairn"; echo mine > "$CAIRN_ARTIFACTS/cairn/outputs.json"; printf '{"f":{"$artifact":"cairn/outputs.json"}}' > "$CAIRN_OUTPUTS"`);
    const result = await (await flow("script-reserved").build(() => ({ o: s({}).exitCode })).run({ root, cache: false })).wait();
    const r = result.tasks.emit!;
    expect(r.status).toBe("failed");
    expect(r.error?.name).toBe("UnsafePathError");
    expect(r.error?.message).toContain('script output "f"');
    expect(r.error?.message).toContain('is in "cairn/"');
  });
});

describe("names from a cache entry", () => {
  it("a poisoned entry (an artifact named ../..) is refused with the name, evicted, and the task runs again", async () => {
    const { top, root } = await sandbox();
    let made = 0;
    const make = task("make").run(async (_, ctx) => (made++, { data: await ctx.artifacts.write("data.txt", "payload") }));
    const use = task("use")
      .input<{ data: Artifact }>()
      .run(async ({ data }) => ({ text: await readFile(data.path, "utf8") }));
    const f = flow("poison").build(() => ({ text: use({ data: make({}).data }).text }));
    expect(await (await f.run({ root })).outputs()).toEqual({ text: "payload" });
    expect(made).toBe(1);

    const entries = join(root, "cache", "entries");
    let poisoned = 0;
    for (const name of await readdir(entries)) {
      const text = await readFile(join(entries, name), "utf8");
      if (!text.includes("data.txt")) continue;
      // Without the digest of its outputs, as an entry made before them is (or one whose writer made
      // its digest too): the digest would refuse the edit before the name is looked at.
      const edited = text
        .replaceAll('\\"artifactPath\\":\\"data.txt\\"', '\\"artifactPath\\":\\"../../../../escape.txt\\"')
        .replaceAll('"artifactPath":"data.txt"', '"artifactPath":"../../../../escape.txt"')
        .replace(/,\\?"outputsDigest\\?":\\?"[0-9a-f]+\\?"/, "");
      expect(edited).not.toContain("outputsDigest");
      await writeFile(join(entries, name), edited);
      poisoned++;
    }
    expect(poisoned).toBeGreaterThan(0);

    const events: RunEvent[] = [];
    const run = await f.run({ root });
    run.on((e) => events.push(e));
    const result = await run.wait();
    expect(result.status).toBe("succeeded");
    expect(result.tasks.make!.status).toBe("succeeded"); // not a hit: it ran again
    expect(made).toBe(2);
    const warning = events.find((e) => e.type === "log" && e.task === "make" && e.level === "warn");
    expect(warning && "message" in warning ? warning.message : "").toMatch(/unusable: Task "make": the artifact name "\.\.\/\.\.\/\.\.\/\.\.\/escape\.txt" from the cache entry of key \w+ climbs out/);
    expect(await escapes(top)).toEqual([]);
    // The third run finds the entry the second wrote, not the poisoned one.
    const third = await (await f.run({ root })).wait();
    expect(third.tasks.make!.status).toBe("cached");
  });
});

describe("names the local store is given", () => {
  it("logArtifact, listArtifacts and downloadArtifact refuse unsafe artifact paths with UnsafePathError", async () => {
    const { top, root } = await sandbox();
    const store = new LocalStore({ root });
    const runId = await store.createRun({ experimentId: await store.ensureExperiment("e"), name: "r" });
    const file = join(top, "f.txt");
    await writeFile(file, "x");
    for (const [name] of ATTACKS.filter(([n]) => n !== "")) {
      await expect(store.logArtifact(runId, file, name), name).rejects.toBeInstanceOf(UnsafePathError);
      await expect(store.downloadArtifact(runId, name, join(top, "dl")), name).rejects.toBeInstanceOf(UnsafePathError);
      await expect(store.listArtifacts(runId, name), name).rejects.toBeInstanceOf(UnsafePathError);
    }
    expect(existsSync(join(top, "dl"))).toBe(false);
    expect(await escapes(top)).toEqual([]);
  });
});
