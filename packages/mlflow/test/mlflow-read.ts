import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { venvPython } from "./mlflow-server.ts";

const readScript = join(dirname(fileURLToPath(import.meta.url)), "mlflow_read.py");

/**
 * Asks MLflow's own Python client (MlflowClient) about what Cairn wrote, so an
 * independent reader decides whether it is right. One process for all queries;
 * see mlflow_read.py for the query shapes.
 */
export async function readWithMlflow(trackingUri: string, queries: object[]): Promise<any[]> {
  const child = spawn(venvPython, [readScript], {
    env: { ...process.env, MLFLOW_TRACKING_URI: trackingUri, MLFLOW_DISABLE_TELEMETRY: "true", DO_NOT_TRACK: "true" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  child.stdin.end(JSON.stringify(queries));
  const code = await new Promise<number | null>((r) => child.on("close", r));
  if (code !== 0) throw new Error(`mlflow_read.py exited with ${code}:\n${err}`);
  const answers = JSON.parse(out) as { ok?: unknown; error?: string }[];
  return answers.map((a) => {
    if (a.error) throw new Error(a.error);
    return a.ok;
  });
}
