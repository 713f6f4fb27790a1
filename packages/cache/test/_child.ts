/** Test fixture: runs a TypeScript file in a separate Node process (through tsx). */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const PACKAGE_DIR = fileURLToPath(new URL("..", import.meta.url));

/** Path of a script in test/fixtures. */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
}

/**
 * Starts `node ...nodeArgs --import tsx script ...args`, under `wrapper` when given
 * (`["unshare", "-p", ...]`); the child is ours to wait for or kill.
 */
export function startTs(
  script: string,
  args: string[],
  wrapper: string[] = [],
  nodeArgs: string[] = [],
): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const command = [...wrapper, process.execPath, ...nodeArgs, "--import", "tsx", script, ...args];
  const child = spawn(command[0]!, command.slice(1), { cwd: PACKAGE_DIR, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once("close", (code) => resolve({ code, stdout, stderr })),
  );
  return { child, done };
}

/** Runs a script to its end (`nodeArgs` go to node, e.g. a preload); rejects when it exits non-zero. */
export async function runTs(script: string, args: string[], nodeArgs: string[] = []): Promise<string> {
  const { code, stdout, stderr } = await startTs(script, args, [], nodeArgs).done;
  if (code !== 0) throw new Error(`${script} ${args.join(" ")} exited with ${code}:\n${stderr}`);
  return stdout;
}

/** The first whole line a started script prints that passes `test`; rejects when the script ends without one. */
export function lineFrom({ child, done }: ReturnType<typeof startTs>, test: (line: string) => boolean): Promise<string> {
  return Promise.race([
    new Promise<string>((resolve) => {
      let out = "";
      child.stdout!.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        const found = out.split("\n").slice(0, -1).find(test);
        if (found !== undefined) resolve(found);
      });
    }),
    done.then(({ code, stderr }): never => {
      throw new Error(`the script ended (${code}) before the line awaited:\n${stderr}`);
    }),
  ]);
}
