import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { TrackerCallError, TrackingError } from "../errors.ts";
import { LocalStore } from "./local/local-store.ts";
import { registerTrackerScheme, resolveTracker } from "./resolve-tracker.ts";

// The MLflow tracker's registration is tested in @cairn/mlflow (src/register.test.ts).
describe("resolveTracker without a registered MLflow tracker", () => {
  it("says how to load the tracker when the URI is an MLflow server's, credentials hidden", async () => {
    const error = await resolveTracker({ env: { MLFLOW_TRACKING_URI: "http://bob:s3cr3t@mlflow.example.com:5000" } }).catch((e: unknown) => e);
    expect(TrackingError.is(error)).toBe(true);
    expect((error as Error).message).toContain('import "@cairn/mlflow/register"');
    expect((error as Error).message).toContain("http://bob:***@mlflow.example.com:5000");
    expect((error as Error).message).not.toContain("s3cr3t");
  });

  it("opens a registered scheme with its factory", async () => {
    const store = new LocalStore({ root: "unused" });
    registerTrackerScheme(["memo"], async (uri, env) => {
      expect(uri).toBe("memo://x");
      expect(env.MLFLOW_TRACKING_URI).toBe("memo://x");
      return store;
    });
    // The store itself, behind the boundary that words a plug-in's failures (registered-tracker.ts).
    const tracker = await resolveTracker({ env: { MLFLOW_TRACKING_URI: "memo://x" } });
    expect(tracker).toBeInstanceOf(LocalStore);
    expect([tracker.kind, tracker.uri, tracker.capabilities]).toEqual([store.kind, store.uri, store.capabilities]);
    expect(tracker.logBatch).toBe(tracker.logBatch);
  });

  it("refuses a scheme no URI can have, warns when a registration replaces another, and names the registered schemes when none fits", async () => {
    const store = new LocalStore({ root: "unused" });
    const factory = async () => store;
    expect(() => registerTrackerScheme(["my_tracker"], factory)).toThrow(/Expected `registerTrackerScheme\(\) scheme` to be a URI scheme without its colon.*\(no `_`\), got "my_tracker"/);
    expect(() => registerTrackerScheme(["x"], "f" as never)).toThrow(/registerTrackerScheme\(\) factory/);
    const warned: Error[] = [];
    const onWarning = (w: Error) => void warned.push(w);
    process.on("warning", onWarning);
    try {
      registerTrackerScheme(["wandb"], factory);
      registerTrackerScheme(["wandb"], factory); // the same factory again: no warning
      registerTrackerScheme(["WandB"], async () => store);
      await new Promise((resolve) => setImmediate(resolve));
      expect(warned.map((w) => [w.name, w.message])).toEqual([["CairnTrackerSchemeWarning", 'The tracker for "wandb://" URIs was registered again: the later registration replaces the earlier one.']]);
    } finally {
      process.off("warning", onWarning);
    }
    await expect(resolveTracker({ env: { MLFLOW_TRACKING_URI: "sqlite:///x.db" } })).rejects.toThrow(/only over HTTP \(and, through plug-ins, .*wandb:\/\/.*\)\./);
  });
});

describe("a tracker a registered factory opens, when it fails with an error that is not Cairn's", () => {
  const here = fileURLToPath(import.meta.url);

  it("says which scheme's factory, registered where, could not open it, and why, the URI's password hidden", async () => {
    registerTrackerScheme(["boomjson"], async (uri) => {
      throw new Error(`cannot open ${uri}`);
    });
    const error = await resolveTracker({ env: { MLFLOW_TRACKING_URI: "boomjson://ann:pw-s3cr3t@host/x" } }).catch((e: unknown) => e);
    // Before: the factory's own `Error: cannot open`, which the CLI printed with Cairn's stack.
    expect(TrackerCallError.is(error)).toBe(true);
    expect(error).toMatchObject({ scheme: "boomjson", call: "factory", uri: "boomjson://ann:***@host/x" });
    expect((error as Error).message).toMatch(
      new RegExp(
        `^Cannot open the tracker for the tracking URI boomjson://ann:\\*\\*\\*@host/x: the factory registered for "boomjson://" URIs by registerTrackerScheme\\(\\) at ${escape(here)}:\\d+:\\d+ ` +
          `threw Error: cannot open boomjson://ann:\\*\\*\\*@host/x\\. Fix that factory, or what it needs .*or set MLFLOW_TRACKING_URI to another tracker`,
      ),
    );
    expect((error as Error).message).not.toContain("s3cr3t");
    expect(((error as Error).cause as Error).message).toContain("cannot open");
  });

  it("hides a token holding `/` up to the last `@`, though the URL standard reads it as a host and a path", async () => {
    // A base64 token: the message showed `mydb://AbC/dEf+gh==@db:5000`, as no user info was read in it.
    registerTrackerScheme(["mydb"], async (uri) => {
      throw new Error(`cannot open ${uri}`);
    });
    const error = await resolveTracker({ env: { MLFLOW_TRACKING_URI: "mydb://AbC/dEf+gh==@db:5000" } }).catch((e: unknown) => e);
    expect(TrackerCallError.is(error)).toBe(true);
    expect(error).toMatchObject({ scheme: "mydb", call: "factory", uri: "mydb://***@db:5000" });
    expect((error as Error).message).toMatch(/^Cannot open the tracker for the tracking URI mydb:\/\/\*\*\*@db:5000: /);
    expect((error as Error).message).not.toMatch(/AbC|dEf/);
  });

  it("keeps a factory's own CairnError as it is", async () => {
    const own = new TrackingError("The service needs a token: set JSON_TOKEN.");
    registerTrackerScheme(["tokenjson"], async () => {
      throw own;
    });
    await expect(resolveTracker({ env: { MLFLOW_TRACKING_URI: "tokenjson://x" } })).rejects.toBe(own);
  });

  it("says which call failed, for which run, from which tracker; a TrackingError of its own passes as it is", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-registered-"));
    try {
      class Failing extends LocalStore {
        override async logBatch(): Promise<void> {
          throw new Error("service said 500");
        }
        override async endRun(): Promise<void> {
          throw new TrackingError("The service is read-only now: try again later.");
        }
      }
      registerTrackerScheme(["failjson"], async () => new Failing({ root }));
      const tracker = await resolveTracker({ env: { MLFLOW_TRACKING_URI: "failjson://x" } });
      const runId = await tracker.createRun({ experimentId: await tracker.ensureExperiment("e"), name: "r" });
      const error = await tracker.logBatch(runId, { params: { a: "1" } }).catch((e: unknown) => e);
      expect(TrackerCallError.is(error)).toBe(true);
      expect(error).toMatchObject({ call: "logBatch", runId, scheme: "failjson" });
      expect((error as Error).message).toMatch(
        new RegExp(
          `^The tracker for the tracking URI failjson://x failed: logBatch\\(\\) for run ${runId} failed with Error: service said 500\\. ` +
            `That tracker comes from the factory registered for "failjson://" URIs by registerTrackerScheme\\(\\) at ${escape(here)}:\\d+:\\d+: fix it or the service it records to`,
        ),
      );
      await expect(tracker.endRun(runId, "FINISHED")).rejects.toThrow(/^The service is read-only now/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it("calls an unexpected failure of a tracker of Cairn's own a bug in Cairn, not a plug-in's to fix", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-registered-"));
    try {
      class Overflowing extends LocalStore {
        override async logBatch(): Promise<void> {
          throw new RangeError("Maximum call stack size exceeded");
        }
      }
      const factory = async () => new Overflowing({ root });
      Object.defineProperty(factory, Symbol.for("cairn.builtInTracker"), { value: "Cairn's own test tracker" });
      registerTrackerScheme(["ownjson"], factory);
      const tracker = await resolveTracker({ env: { MLFLOW_TRACKING_URI: "ownjson://x" } });
      const runId = await tracker.createRun({ experimentId: await tracker.ensureExperiment("e"), name: "r" });
      const message = ((await tracker.logBatch(runId, { params: { a: "1" } }).catch((e: unknown) => e)) as Error).message;
      expect(message).toContain("failed with RangeError: Maximum call stack size exceeded. That tracker is Cairn's own test tracker");
      expect(message).toContain("this is a bug in Cairn; report it to Cairn's maintainers");
      expect(message).not.toContain("fix it or the service");
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

/** `text` for a RegExp, as it is. */
function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
