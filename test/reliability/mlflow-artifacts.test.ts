/**
 * With a real `mlflow server` (one for this file) and "machines" that are separate `.cairn`
 * roots sharing it:
 * - class 8: a flow's artifact outputs resolve on a machine whose hits all come from the
 *   server's index: `run.outputs()`, the CLI's `Outputs:` line and the `--json` flow event hand
 *   out local files, downloaded on the way;
 * - class 1: a poisoned index entry and a hostile artifact listing (a proxy rewrites the real
 *   server's answer: MLflow itself never lists `..`) cannot put a file outside its folder;
 * - class 3: a folder artifact's download cut short (a run killed with -9 while a proxy holds
 *   one of its files, or the half folder such a kill left before folders were placed whole) is
 *   no change of the artifact: the hit is used, the folder downloaded again whole, and the
 *   leftovers of dead downloads are removed.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import type http from "node:http";
import { hostname } from "node:os";
import { join, relative } from "node:path";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { currentOwner, formatOwner, processStartTime } from "@cairn/cache";
import { UnsafePathError } from "@cairn/core";
import { MlflowTracker } from "@cairn/mlflow/tracker";
import type { Artifact } from "@cairn/dsl";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairnRun, childEnv, finalStatus, runCollect, start, cairnBin, statuses, tmp } from "../cache/helpers.ts";
import artifactOutputs from "./fixtures/artifact-outputs.flow.ts";
import { cairnRunKilled, startProxy } from "./helpers.ts";

const FLOW_FILE = join(import.meta.dirname, "fixtures/artifact-outputs.flow.ts");
const FOLDER_FLOW = join(import.meta.dirname, "fixtures/folder-artifact.flow.ts");

let server: MlflowServer;
beforeAll(async () => {
  server = await startMlflowServer();
});
afterAll(async () => {
  await server?.stop();
});

const env = () => ({ MLFLOW_TRACKING_URI: server.uri });

type Outputs = { data: Artifact; parts: Artifact[]; n: number };

/** Checks that the outputs are local files under `root` with the bytes machine A wrote. */
async function expectLocal(outputs: { data: string | Artifact; parts: (string | Artifact)[] }, root: string): Promise<void> {
  const path = (a: string | Artifact) => (typeof a === "string" ? a : a.path);
  expect(path(outputs.data).startsWith(root)).toBe(true);
  expect(await readFile(path(outputs.data), "utf8")).toBe("abc".repeat(5));
  expect(await Promise.all(outputs.parts.map((p) => readFile(path(p), "utf8")))).toEqual(["1", "22"]);
}

/** Files under `dir` whose name mentions "escape". */
async function escapes(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (e.name.includes("escape")) found.push(relative(dir, join(e.parentPath, e.name)));
  }
  return found;
}

describe("flow outputs that are artifacts, on a machine whose hits come from the server", () => {
  let produceRunId = "";

  it("resolve to local files in run.outputs(), the CLI's Outputs: line and the --json flow event", async () => {
    // Machine A computes, then goes away with its disk.
    const rootA = await tmp("cairn-out-a-");
    const a = await runCollect(artifactOutputs, { root: rootA, env: env() });
    expect(a.result.status).toBe("succeeded");
    produceRunId = a.result.tasks.produce!.runId!;
    await rm(rootA, { recursive: true, force: true });

    // Machine B, in process: an empty root; everything is a hit found through the server.
    const rootB = await tmp("cairn-out-b-");
    const b = await runCollect(artifactOutputs, { root: rootB, env: env() });
    expect(statuses(b.result)).toEqual({ produce: "cached" });
    const outputs = (await b.run.outputs()) as Outputs;
    expect(outputs.n).toBe(5);
    await expectLocal(outputs, rootB);
    expect(outputs.data).toMatchObject({ kind: "cairn.artifact", artifactPath: "nested/data.txt", runId: produceRunId });
    expect(b.warnings).toEqual([]);
    // A second run on B takes the copy it has (same digest) instead of downloading again: a
    // proxy in front of the server sees no artifact of the run asked for.
    const downloads: string[] = [];
    const counting = await startProxy(server.uri, (req) => {
      if (req.method === "GET" && /\/mlflow-artifacts\/artifacts\/.+\/(nested|parts)\//.test(req.url ?? "")) downloads.push(req.url!);
      return false;
    });
    try {
      const b2 = await runCollect(artifactOutputs, { root: rootB, env: { MLFLOW_TRACKING_URI: counting.uri } });
      expect(statuses(b2.result)).toEqual({ produce: "cached" });
      expect(((await b2.run.outputs()) as Outputs).data.path).toBe(outputs.data.path);
      expect(downloads, "artifacts downloaded again").toEqual([]);
    } finally {
      await counting.close();
    }

    // The CLI loads the flow file itself (its code fingerprint differs from vitest's transform):
    // machine C computes through the CLI, then goes away with its disk.
    const rootC = await tmp("cairn-out-c-");
    const c = await cairnRun(FLOW_FILE, rootC, [], env()).done;
    expect(c.code, c.stderr).toBe(0);
    expect(c.json.find((e) => e.type === "task" && e.task === "produce" && e.status === "succeeded")).toBeDefined();
    await rm(rootC, { recursive: true, force: true });

    // Machine D: the CLI's summary line names files that exist.
    const rootD = await tmp("cairn-out-d-");
    const d = await start(process.execPath, [cairnBin, "run", FLOW_FILE, "--root", rootD], { env: childEnv(env()) }).done;
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(/^produce\s+cached\b/m);
    const line = d.stdout.split("\n").find((l) => l.startsWith("Outputs: "));
    const printed = JSON.parse(line!.slice("Outputs: ".length)) as { data: string; parts: string[]; n: number };
    await expectLocal(printed, rootD);

    // Machine E: --json hands the outputs over in the final flow event.
    const rootE = await tmp("cairn-out-e-");
    const e = await cairnRun(FLOW_FILE, rootE, [], env()).done;
    expect(e.code, e.stderr).toBe(0);
    expect(e.json.find((x) => x.type === "task" && x.task === "produce" && x.status === "cached")).toBeDefined();
    const final = e.json.find((x) => x.type === "flow" && x.status === "succeeded") as { outputs?: Outputs } | undefined;
    expect(final?.outputs).toBeDefined();
    await expectLocal(final!.outputs!, rootE);
  });

  it("an artifact that cannot be downloaded is handed over as recorded, with a warning naming its runs:/ URI", async () => {
    // A proxy in front of the real server refuses every artifact download.
    const proxy = await startProxy(server.uri, (req, res) => {
      if (req.method === "GET" && /\/mlflow-artifacts\/artifacts\/.+nested\/data\.txt/.test(req.url ?? "")) {
        res.writeHead(503, { "content-type": "application/json" }).end('{"error_code":"TEMPORARILY_UNAVAILABLE","message":"down"}');
        return true;
      }
      return false;
    });
    try {
      const root = await tmp("cairn-out-f-");
      const r = await runCollect(artifactOutputs, { root, env: { MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_HTTP_REQUEST_MAX_RETRIES: "0" } });
      expect(r.result.status).toBe("succeeded");
      const warning = r.warnings.find((w) => w.startsWith('Flow output "data"'));
      expect(warning).toContain(`runs:/${produceRunId}/nested/data.txt`);
      // The other outputs were downloaded all the same.
      const out = r.result.outputs as Outputs;
      expect(await readFile(out.parts[1]!.path, "utf8")).toBe("22");
      // The result and the final flow event say which output is no local file, and why.
      expect(Object.keys(r.result.notDownloaded ?? {})).toEqual(["data"]);
      expect(r.result.notDownloaded!.data).toContain("503");
      expect(r.events.find((e) => e.type === "flow" && e.status === "succeeded")).toMatchObject({ notDownloaded: r.result.notDownloaded });
    } finally {
      await proxy.close();
    }
  });

  // A full disk there was taken for a server that did not answer: each file fetched again and
  // again for minutes, then "Flow succeeded" with an Outputs: line naming files never written.
  it("a download into a full disk fails at once, and the Outputs: line says it was not downloaded and why instead of naming a file that is not there", async (ctx) => {
    const root = await tmp("cairn-out-full-");
    const downloads = join(root, "downloads");
    await mkdir(downloads, { recursive: true });
    const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", downloads]);
    if (mounted.status !== 0) return ctx.skip();
    const gets: string[] = [];
    const counting = await startProxy(server.uri, (req) => {
      if (req.method === "GET" && /\/mlflow-artifacts\/artifacts\/.+\/nested\/data\.txt/.test(req.url ?? "")) gets.push(req.url!);
      return false;
    });
    try {
      await writeFile(join(downloads, "filler"), Buffer.alloc(256 * 1024)).catch(() => {});
      const r = await start(process.execPath, [cairnBin, "run", FLOW_FILE, "--root", root], { env: childEnv({ MLFLOW_TRACKING_URI: counting.uri, MLFLOW_HTTP_REQUEST_MAX_RETRIES: "3" }) }).done;
      // The flow's work was done and recorded (FINISHED): only this machine's copy is missing.
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^produce\s+cached\b/m);
      expect(gets).toHaveLength(1);
      expect(r.stderr).not.toContain("Cannot reach the MLflow tracking server");
      const line = r.stdout.split("\n").find((l) => l.startsWith("Outputs: "))!;
      const printed = JSON.parse(line.slice("Outputs: ".length)) as { data: string; parts: string[] };
      // The CLI's hits are of machine C's run (the CLI's code fingerprint is not vitest's).
      expect(printed.data).toMatch(new RegExp(`^runs:/[0-9a-f]{32}/nested/data\\.txt \\(not downloaded: Cannot write the file of mlflow-artifacts GET nested/data\\.txt into ${downloads}/.*ENOSPC.*free space there, then run again\\.\\)$`));
      expect(printed.parts.every((p) => /^runs:\/[0-9a-f]{32}\/parts\/\S+ \(not downloaded: /.test(p))).toBe(true);
    } finally {
      await counting.close();
      spawnSync("umount", [downloads]);
    }
  });

  it("a poisoned index entry (an artifact named ../..) is refused with the name, and the task runs again", async () => {
    const tracker = MlflowTracker.fromEnv(env());
    const run = await tracker.getRun(produceRunId);
    const key = run!.tags["cairn.cache_key"]!;
    const experimentId = run!.experimentId;
    const text = (await tracker.readIndexEntry!(experimentId, `${key}.json`))!;
    expect(text).toContain('"artifactPath":"nested/data.txt"');
    // Without the digest of its outputs, as an entry made before them is (or one whose writer made
    // its digest too): the digest would refuse the edit before the name is looked at.
    const poisoned = text.replaceAll('"artifactPath":"nested/data.txt"', '"artifactPath":"../../../../escape.txt"').replace(/,"outputsDigest":"[0-9a-f]+"/, "");
    expect(poisoned).not.toContain("outputsDigest");
    await tracker.writeIndexEntry!(experimentId, `${key}.json`, poisoned);

    const top = await tmp("cairn-out-poison-");
    const root = join(top, "a", "b", "c", ".cairn");
    await mkdir(root, { recursive: true });
    const r = await runCollect(artifactOutputs, { root, env: env() });
    expect(statuses(r.result)).toEqual({ produce: "succeeded" }); // not a hit: it ran again
    expect(r.warnings.join("\n")).toMatch(/unusable: Task "produce": the artifact name "\.\.\/\.\.\/\.\.\/\.\.\/escape\.txt" from the cache entry of key [0-9a-f]{64} climbs out/);
    expect(await escapes(top)).toEqual([]);
    // The run wrote a good entry over the poisoned one.
    expect(await tracker.readIndexEntry!(experimentId, `${key}.json`)).not.toContain("escape");
  });
});

describe("a cache index entry that the server does not take", () => {
  it("leaves the entry stored here (the next run hits), and the warning says other machines will run the task again", async () => {
    const proxy = await startProxy(server.uri, (req, res) => {
      if (req.method === "PUT" && (req.url ?? "").includes("/cairn-index/")) {
        res.writeHead(500, { "content-type": "application/json" }).end('{"error_code":"INTERNAL_ERROR","message":"disk full"}');
        return true;
      }
      return false;
    });
    try {
      const root = await tmp("cairn-index-put-");
      const proxied = { MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_EXPERIMENT_NAME: "index-put-refused", MLFLOW_HTTP_REQUEST_MAX_RETRIES: "0" };
      const first = await runCollect(artifactOutputs, { root, env: proxied });
      expect(statuses(first.result)).toEqual({ produce: "succeeded" });
      expect(first.warnings.join("\n")).toMatch(/stored the cache entry, but not its index entry in the experiment \(other machines will run this task again\): .*disk full/);
      expect(first.warnings.join("\n")).not.toContain("could not store the cache entry");
      const again = await runCollect(artifactOutputs, { root, env: proxied });
      expect(statuses(again.result)).toEqual({ produce: "cached" });
      // Another machine finds no index entry: it runs the task.
      const other = await runCollect(artifactOutputs, { root: await tmp("cairn-index-put-other-"), env: { ...proxied, MLFLOW_TRACKING_URI: server.uri } });
      expect(statuses(other.result)).toEqual({ produce: "succeeded" });
    } finally {
      await proxy.close();
    }
  });
});

describe("an MLflow artifact listing that names ../", () => {
  it("is refused before any file is written outside the download folder", async () => {
    const real = MlflowTracker.fromEnv(env());
    const experimentId = await real.ensureExperiment("hostile-listing");
    const runId = await real.createRun({ experimentId, name: "r" });
    const top = await tmp("cairn-listing-");
    await mkdir(join(top, "folder"), { recursive: true });
    await writeFile(join(top, "folder", "a.txt"), "a");
    await real.logArtifact(runId, join(top, "folder"));
    await real.endRun(runId, "FINISHED");

    for (const hostile of ["../../escape.txt", "sub/../../../escape.txt", "/etc/escape.txt", "..\\..\\escape.txt", "C:\\escape.txt"]) {
      const proxy = await startProxy(server.uri, (req, res) => {
        const url = new URL(req.url ?? "", "http://x");
        if (req.method === "GET" && url.pathname.endsWith("/mlflow-artifacts/artifacts") && url.searchParams.get("path")?.endsWith("/folder")) {
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ files: [{ path: "a.txt", is_dir: false, file_size: 1 }, { path: hostile, is_dir: false, file_size: 3 }] }));
          return true;
        }
        return false;
      });
      try {
        const dest = join(top, "x", "y", "dest");
        await mkdir(dest, { recursive: true });
        const error = await MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: proxy.uri })
          .downloadArtifact(runId, "folder", dest)
          .then(() => undefined, (e: unknown) => e);
        expect(error, hostile).toBeInstanceOf(UnsafePathError);
        expect((error as UnsafePathError).message).toContain(JSON.stringify(hostile));
        expect((error as UnsafePathError).message).toContain(`MLflow's artifact listing of run ${runId}`);
        expect(existsSync(join(dest, "folder", "a.txt")), "nothing is downloaded from a listing that fails the check").toBe(false);
        expect(await escapes(top)).toEqual([]);
      } finally {
        await proxy.close();
      }
    }
  });
});

describe("a file artifact whose download was cut short", () => {
  it("a run killed with -9 mid-file leaves only a partial name, never the artifact's; the next run uses the hit, downloads the file whole and removes the leftover", async () => {
    // Machine A records `produce` through the CLI (the code fingerprint of the later CLI runs).
    const a = await cairnRun(FLOW_FILE, await tmp("cairn-file-a-"), [], env()).done;
    expect(a.code, a.stderr).toBe(0);
    const root = await tmp("cairn-file-k-");
    let held = false;
    // nested/data.txt (15 bytes) is answered with its first 3, then nothing: the run is killed mid-file.
    const proxy = await startProxy(server.uri, (req, res) => {
      if (req.method !== "GET" || !/\/mlflow-artifacts\/artifacts\/.+\/nested\/data\.txt$/.test(req.url ?? "")) return false;
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": "15" });
      res.write("abc", () => (held = true));
      return true;
    });
    try {
      await cairnRunKilled(FLOW_FILE, root, () => held, { poll: true, delayMs: 500, env: { MLFLOW_TRACKING_URI: proxy.uri } });
    } finally {
      await proxy.close();
    }
    const [runDir, ...others] = await readdir(join(root, "downloads"));
    expect(others).toEqual([]);
    const folder = join(root, "downloads", runDir!, "nested");
    const left = await readdir(folder);
    expect(left, "a part of the file never has the artifact's name").not.toContain("data.txt");
    const partial = left.filter((name) => name.startsWith("data.txt.part-"));
    expect(partial).toHaveLength(1);
    expect(await readFile(join(folder, partial[0]!), "utf8")).toBe("abc");

    const r = await cairnRun(FLOW_FILE, root, [], env()).done;
    expect(r.code, r.stderr).toBe(0);
    expect(finalStatus(r.json, "produce")).toBe("cached");
    expect(`${r.stdout}${r.stderr}`).not.toMatch(/unusable|changed since it was cached|handed over as recorded/);
    const outputs = (r.json.find((e) => e.type === "flow" && e.status === "succeeded") as { outputs: Outputs }).outputs;
    expect(await readFile(outputs.data.path, "utf8")).toBe("abc".repeat(5));
    expect(await readdir(folder)).toEqual(["data.txt"]);
  });
});

/** Every file under `dir` (relative path → size in bytes). */
async function sizes(dir: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) out[relative(dir, join(e.parentPath, e.name))] = (await stat(join(e.parentPath, e.name))).size;
  }
  return out;
}

/** Folder `d` as folder-artifact.flow.ts writes it. */
const WHOLE_D = { "f1.txt": 700, "f2.txt": 1400, "f3.txt": 2100, "f4.txt": 2800, "f5.txt": 3500, "sub/deep.txt": 4 };
/** What its `use` task returns for the whole folder. */
const USED_WHOLE = { files: 6, bytes: 10504 };

describe("a folder artifact whose download was cut short", () => {
  let makeRunId = "";
  beforeAll(async () => {
    // Machine A computes `make` through the CLI (the code fingerprint the later CLI runs have), and goes away with its disk.
    const rootA = await tmp("cairn-folder-a-");
    const a = await cairnRun(FOLDER_FLOW, rootA, [], env()).done;
    expect(a.code, a.stderr).toBe(0);
    makeRunId = a.json.find((e) => e.type === "task" && e.task === "make" && e.status === "succeeded")!.taskRunId as string;
    await rm(rootA, { recursive: true, force: true });
  });

  /** `cairn run` of the folder flow on `root`, checked to use A's `make` and to read the whole folder. */
  async function expectHitAndWholeFolder(root: string): Promise<void> {
    const r = await cairnRun(FOLDER_FLOW, root, [], env()).done;
    expect(r.code, r.stderr).toBe(0);
    expect(`${r.stdout}${r.stderr}`).not.toMatch(/unusable|changed since it was cached/);
    expect(finalStatus(r.json, "make")).toBe("cached");
    expect(finalStatus(r.json, "use")).toBe("succeeded");
    expect((r.json.find((e) => e.type === "flow" && e.status === "succeeded") as { outputs?: unknown }).outputs).toEqual(USED_WHOLE);
    expect(await sizes(join(root, "downloads", makeRunId, "d"))).toEqual(WHOLE_D);
  }

  it("a run killed with -9 mid-download leaves no folder under the artifact's name; the next run uses the hit, downloads it whole and removes the leftover", async () => {
    const root = await tmp("cairn-folder-k-");
    let held = false;
    // f3.txt is never answered: the download is in progress when the run is killed.
    const proxy = await startProxy(server.uri, (req) => {
      if (req.method !== "GET" || !/\/mlflow-artifacts\/artifacts\/.+\/d\/f3\.txt$/.test(req.url ?? "")) return false;
      held = true;
      return true;
    });
    try {
      await cairnRunKilled(FOLDER_FLOW, root, () => held, { poll: true, env: { MLFLOW_TRACKING_URI: proxy.uri } });
    } finally {
      await proxy.close();
    }
    const left = await readdir(join(root, "downloads", makeRunId));
    expect(left, "a half folder never has the artifact's name").not.toContain("d");
    expect(left.filter((name) => name.startsWith("d.part-"))).toHaveLength(1);

    await expectHitAndWholeFolder(root);
    expect(await readdir(join(root, "downloads", makeRunId))).toEqual(["d"]);
  });

  it("a half folder in downloads/ (as a kill left it before folders were placed whole) counts as absent: the hit is used and the folder downloaded again", async () => {
    const root = await tmp("cairn-folder-c-");
    const runDir = join(root, "downloads", makeRunId);
    await mkdir(join(runDir, "d"), { recursive: true });
    await writeFile(join(runDir, "d", "f1.txt"), "file 1\n".repeat(100));
    await writeFile(join(runDir, "d", "f2.txt"), "file 2\n".repeat(37)); // cut mid-file
    // Leftovers of downloads: of a process that has exited (removed), and of one that still runs (kept).
    const exited = spawn(process.execPath, ["-e", ""]);
    await once(exited, "exit");
    const dead = formatOwner({ host: hostname(), pid: exited.pid! });
    const sleeper = spawn("sleep", ["60"]);
    try {
      const live = formatOwner({ host: hostname(), pid: sleeper.pid!, start: processStartTime(sleeper.pid!)!, space: currentOwner().space! });
      await mkdir(join(runDir, `d.part-${dead}-0123456789ab`));
      await writeFile(join(runDir, `d.part-${dead}-0123456789ab`, "f1.txt"), "file 1\n");
      await writeFile(join(runDir, `other.txt.part-${dead}-ba9876543210`), "half");
      await mkdir(join(runDir, `d.part-${live}-00000000000a`));

      await expectHitAndWholeFolder(root);
      expect((await readdir(runDir)).sort()).toEqual(["d", `d.part-${live}-00000000000a`]);
    } finally {
      sleeper.kill("SIGKILL");
    }
  });

  it("two downloads of one folder at once both get it whole, a folder already in place is kept, and a failed download leaves nothing", async () => {
    const dest = await tmp("cairn-folder-two-");
    const [one, two] = await Promise.all([MlflowTracker.fromEnv(env()).downloadArtifact(makeRunId, "d", dest), MlflowTracker.fromEnv(env()).downloadArtifact(makeRunId, "d", dest)]);
    expect([one, two]).toEqual([join(dest, "d"), join(dest, "d")]);
    expect(await sizes(join(dest, "d"))).toEqual(WHOLE_D);
    expect(await readdir(dest)).toEqual(["d"]);

    // Another download into the same place keeps the files a reader may already have open.
    const before = (await stat(join(dest, "d", "f1.txt"))).ino;
    await MlflowTracker.fromEnv(env()).downloadArtifact(makeRunId, "d", dest);
    expect((await stat(join(dest, "d", "f1.txt"))).ino).toBe(before);
    expect(await readdir(dest)).toEqual(["d"]);

    // f3.txt fails while f1.txt, asked at the same time, is held until that failure was sent: the
    // download fails only once f1.txt's has ended (it would otherwise write into the partial
    // folder after its removal), and leaves nothing.
    let release = () => {};
    const f3Failed = new Promise<void>((r) => (release = r));
    let f1Ended = false;
    const proxy = await startProxy(server.uri, (req, res) => {
      if (req.method !== "GET") return false;
      if (/\/d\/f3\.txt$/.test(req.url ?? "")) {
        res.writeHead(404, { "content-type": "application/json" }).end('{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"gone"}', release);
        return true;
      }
      if (!/\/d\/f1\.txt$/.test(req.url ?? "")) return false;
      void f3Failed.then(async () => {
        const upstream = await fetch(`${server.uri}${req.url}`);
        res.writeHead(upstream.status).end(Buffer.from(await upstream.arrayBuffer()), () => (f1Ended = true));
      });
      return true;
    });
    try {
      const empty = await tmp("cairn-folder-failed-");
      const failed = await MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_HTTP_REQUEST_MAX_RETRIES: "0" })
        .downloadArtifact(makeRunId, "d", empty)
        .then(() => false, () => true);
      expect(failed).toBe(true);
      expect(f1Ended, "the failure waits for the downloads under way").toBe(true);
      expect(await readdir(empty)).toEqual([]);
    } finally {
      await proxy.close();
    }
  });
});
