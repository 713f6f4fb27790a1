/**
 * What a folder artifact written by a process may hold: files, folders and links that stay
 * inside CAIRN_ARTIFACTS. A link out (what it points to would be uploaded), a dangling link and
 * a FIFO are refused with ProcessOutputError naming the entry; links inside are uploaded to a
 * real MLflow server as their content; and a local file the MLflow client cannot read is a
 * TrackingError naming it, sent once, not a "cannot reach the server" after minutes of retries.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flow } from "@cairn/dsl";
import { MlflowTracker } from "@cairn/mlflow/tracker";
import { script } from "../../packages/process/src/index.ts";
import { startMlflowServer, type MlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { hasVenv, runOptions, tempRoot } from "./helpers.ts";

/**
 * A script that fills the folder artifact `bundle` with ok.txt, weights.bin, v1/x.txt, and then
 * the entry its first argument names: `link <target> <name>` or `fifo <name>`.
 */
const BUNDLE = [
  "import os, sys, cairn_task",
  "d = cairn_task.artifact_path('bundle'); os.makedirs(os.path.join(d, 'v1'))",
  "open(os.path.join(d, 'ok.txt'), 'w').write('fine')",
  "open(os.path.join(d, 'weights.bin'), 'w').write('weights')",
  "open(os.path.join(d, 'v1', 'x.txt'), 'w').write('x')",
  "args = sys.argv[1:]",
  "while args:",
  "    if args[0] == 'link': os.symlink(args[1], os.path.join(d, args[2])); args = args[3:]",
  "    else: os.mkfifo(os.path.join(d, args[1])); args = args[2:]",
  "cairn_task.set_outputs(bundle=cairn_task.artifact('bundle'))",
].join("\n");

async function bundleScript(): Promise<{ dir: string; file: string; outside: string }> {
  const dir = await tempRoot();
  const file = join(dir, "bundle.py");
  await writeFile(file, BUNDLE);
  const outside = join(dir, "outside.txt");
  await writeFile(outside, "TOP SECRET HOST FILE");
  return { dir, file, outside };
}

describe("a folder artifact's entries", () => {
  it("a link out of CAIRN_ARTIFACTS, a dangling link, a link loop and a FIFO are refused, naming the entry", async () => {
    const { dir, file, outside } = await bundleScript();
    const cases: Array<[string[], string | RegExp]> = [
      [["link", outside, "stolen.txt"], `a folder holding "stolen.txt", a link to ${outside}, outside CAIRN_ARTIFACTS: copy what it points to into the folder instead`],
      [["link", dir, "dirlink"], `a folder holding "dirlink", a link to ${dir}, outside CAIRN_ARTIFACTS`],
      [["link", "weights-old.bin", "latest.bin"], `a folder holding "latest.bin", a link to weights-old.bin, which does not exist: remove the link, or put the file it names in its place`],
      [["link", "..", "v1/up"], `a folder holding "v1/up", a link to `],
      // Before: "a link to b, which does not exist".
      [["link", "b", "a", "link", "a", "b"], /a folder holding "(a", a link to b|b", a link to a), which leads back to itself \(a loop of links\): remove the link, or point it at a file or folder/],
      [["link", "self", "self"], `a folder holding "self", a link to self, which leads back to itself (a loop of links): remove the link, or point it at a file or folder`],
      [["fifo", "pipe"], `a folder holding "pipe", which is neither a file nor a folder (a FIFO, socket or device): remove it`],
    ];
    for (const [args, expected] of cases) {
      const t = script("bundle", { file, args }).retries(2, { minDelayMs: 10 });
      const result = await (await flow("links").build(() => ({ x: t().$out })).run(await runOptions({ cache: false }))).wait();
      const error = result.tasks.bundle!.error!;
      expect(error?.name, args.join(" ")).toBe("ProcessOutputError");
      if (typeof expected === "string") expect(error.message).toContain(`output "bundle" names artifact "bundle", ${expected}`);
      else expect(error.message).toMatch(new RegExp(`output "bundle" names artifact "bundle", ${expected.source}`));
      expect(result.tasks.bundle!.attempts).toBe(1);
    }
  }, 60_000);

  it("an artifact that is itself a FIFO or a dangling link is refused, with the cache on, before anything reads it (before: a dangling link was called no such file)", async () => {
    const dir = await tempRoot();
    const file = join(dir, "top.py");
    await writeFile(
      file,
      [
        "import os, sys, cairn_task",
        "p = cairn_task.artifact_path('pipe')",
        "os.mkfifo(p) if sys.argv[1] == 'fifo' else os.symlink('/nonexistent/x', p)",
        "cairn_task.set_outputs(pipe=cairn_task.artifact('pipe'))",
      ].join("\n"),
    );
    const cases: Array<[string, string]> = [
      ["fifo", `output "pipe" names artifact "pipe", which is neither a file nor a folder (a FIFO, socket or device). Write a file instead.`],
      ["dangling", `output "pipe" names artifact "pipe", a link to /nonexistent/x, which does not exist. Remove the link, or write the file at artifact_path("pipe") (Python) or artifactPath("pipe") (TypeScript) instead.`],
    ];
    for (const [kind, expected] of cases) {
      const t = script("top", { file, args: [kind] });
      const result = await (await flow("top").build(() => ({ x: t().$out })).run(await runOptions())).wait();
      const error = result.tasks.top!.error!;
      expect(error?.name, kind).toBe("ProcessOutputError");
      expect(error.message, kind).toContain(expected);
      // "pipe" is a valid name: no rule for names in the message, as for a function task's.
      expect(error.message, kind).not.toContain("An artifact name must be");
    }
  }, 60_000);

  it("links to a file or a folder inside CAIRN_ARTIFACTS are fine", async () => {
    const { file } = await bundleScript();
    const t = script("bundle", { file, args: ["link", "weights.bin", "latest.bin", "link", "v1", "current"] });
    const result = await (await flow("inside").build(() => ({ x: t().$out })).run(await runOptions({ cache: false }))).wait();
    expect(result.error).toBeUndefined();
  });
});

let server: MlflowServer | undefined;

describe.skipIf(!hasVenv)("a folder artifact's entries with an MLflow server", () => {
  beforeAll(async () => {
    server = await startMlflowServer();
  }, 180_000);
  afterAll(async () => {
    await server?.stop();
  });

  /** Few quick retries: a local read error taken for a network one would show as 3 attempts. */
  const tracker = () => MlflowTracker.fromEnv({ MLFLOW_HTTP_REQUEST_MAX_RETRIES: "2", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: "0", MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: "0" }, server!.uri);
  /** The PUTs `t` sends from now on. */
  const puts = (t: MlflowTracker) => {
    const sent: string[] = [];
    t.client.http.observe((e) => {
      if (e.phase === "request" && e.method === "PUT") sent.push(decodeURIComponent(new URL(e.url).pathname));
    });
    return sent;
  };
  /** Every artifact file path of a run, recursively. */
  const filesOf = async (t: MlflowTracker, runId: string): Promise<string[]> => {
    const run = (await t.client.getRun(runId))!;
    const walk = async (path?: string): Promise<string[]> => {
      const out: string[] = [];
      for (const f of await t.client.listArtifacts(run.info.artifactUri, path)) out.push(...(f.isDir ? await walk(f.path) : [f.path]));
      return out;
    };
    return walk();
  };

  it("uploads what links inside point to; a link out uploads nothing of the folder, and the task fails naming it", async () => {
    const { file, outside } = await bundleScript();
    const t = tracker();
    const good = script("bundle", { file, args: ["link", "weights.bin", "latest.bin", "link", "v1", "current"] });
    const ok = await (await flow("inside").build(() => ({ x: good().$out })).run(await runOptions({ tracker: t, cache: false }))).wait();
    expect(ok.error).toBeUndefined();
    const uploaded = (await filesOf(t, ok.tasks.bundle!.runId!)).filter((p) => p.startsWith("bundle/")).sort();
    expect(uploaded).toEqual(["bundle/current/x.txt", "bundle/latest.bin", "bundle/ok.txt", "bundle/v1/x.txt", "bundle/weights.bin"]);
    const latest = join(await tempRoot(), "latest.bin");
    await t.client.downloadArtifactFile((await t.client.getRun(ok.tasks.bundle!.runId!))!.info.artifactUri, "bundle/latest.bin", latest);
    expect(execFileSync("cat", [latest], { encoding: "utf8" })).toBe("weights");

    const bad = script("bundle", { file, args: ["link", outside, "stolen.txt"] });
    const failed = await (await flow("outside").build(() => ({ x: bad().$out })).run(await runOptions({ tracker: t, cache: false }))).wait();
    expect(failed.tasks.bundle!.error?.name).toBe("ProcessOutputError");
    expect((await filesOf(t, failed.tasks.bundle!.runId!)).filter((p) => p.startsWith("bundle/"))).toEqual([]);
  }, 120_000);

  it("the tracker refuses a folder holding a dangling link before sending any of it, naming the link", async () => {
    const t = tracker();
    const runId = (await t.client.createRun({ experimentId: await t.client.ensureExperiment("links") })).runId;
    const folder = join(await tempRoot(), "model");
    await mkdir(folder);
    await writeFile(join(folder, "weights-v2.bin"), "w");
    await symlink("weights-old.bin", join(folder, "latest.bin"));
    const sent = puts(t);
    const error = await t.logArtifact(runId, folder).then(() => undefined, (e: unknown) => e as Error);
    expect(error?.name).toBe("TrackingError");
    expect(error?.message).toBe(
      `Cannot upload the folder ${folder} as an artifact: latest.bin is a link to weights-old.bin, which does not exist. Remove it from the folder, or replace it by the file it stands for.`,
    );
    expect(sent).toEqual([]);
  });

  it("a local file the client cannot read is a TrackingError naming it, tried once, and the server is not marked unreachable", async () => {
    const t = tracker();
    const run = await t.client.createRun({ experimentId: await t.client.ensureExperiment("unreadable") });
    const sent = puts(t);
    // A folder: refused before any request (it was EISDIR from the body stream, retried, then "Cannot reach the MLflow tracking server").
    const folder = await tempRoot();
    const notFile = await t.client.uploadArtifact(run.artifactUri, folder).then(() => undefined, (e: unknown) => e as Error);
    expect(notFile?.name).toBe("TrackingError");
    expect(notFile?.message).toContain(`Cannot read ${folder} to upload it (mlflow-artifacts PUT `);
    expect(notFile?.message).toContain("it is not a file (a folder, FIFO, socket or device)");
    const missing = await t.client.uploadArtifact(run.artifactUri, join(folder, "gone.bin")).then(() => undefined, (e: unknown) => e as Error);
    expect(missing?.message).toContain(`Cannot read ${join(folder, "gone.bin")} to upload it (mlflow-artifacts PUT gone.bin): ENOENT: no such file or directory`);
    expect(sent).toEqual([]);
    // A regular file whose read fails once the request is under way (Linux: /proc/self/mem at offset 0 is EIO).
    if (existsSync("/proc/self/mem")) {
      const unreadable = await t.client.uploadArtifact(run.artifactUri, "/proc/self/mem").then(() => undefined, (e: unknown) => e as Error);
      expect(unreadable?.name).toBe("TrackingError");
      expect(unreadable?.message).toContain("Cannot read /proc/self/mem to upload it (mlflow-artifacts PUT mem): EIO: i/o error, read. This is a local file problem, not the MLflow server's");
      expect(sent.length).toBe(1); // no retry
    }
    // The next upload gets its answer as usual.
    const fine = join(folder, "fine.txt");
    await writeFile(fine, "fine");
    await t.client.uploadArtifact(run.artifactUri, fine);
    expect((await t.client.listArtifacts(run.artifactUri)).map((f) => f.path)).toContain("fine.txt");
  });
});
