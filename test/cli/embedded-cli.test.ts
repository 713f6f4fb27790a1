/**
 * `cli()` in an app (README, Embedding): it resolves to its exit code and leaves the process to
 * the app, with no signal handlers of its own and no `process.exit`, also when a run leaves
 * abandoned work running. The app is a real `node --import tsx` process.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { start, childEnv, repo, tmp } from "../cache/helpers.ts";

const app = join(repo, "test/cli/fixtures/embed/app-cli.ts");

describe("cli() embedded in an app", () => {
  it("resolves after a run that left abandoned work running, and the app's process goes on to its own end", async () => {
    const root = await tmp("cairn-embed-cli-");
    const flowFile = join(repo, "test/reliability/fixtures/ignores-signal.flow.ts");
    const exit = await start(process.execPath, ["--import", "tsx", app, flowFile, root], { env: childEnv({ STRAY_MS: "4000" }) }).done;
    expect(exit.stdout, exit.stderr).toContain("[app] cli() resolved 1");
    expect(exit.stdout).not.toContain("Exiting without waiting for abandoned work");
    // Exited by itself once the stray work ended, with the app's code, not cairn's.
    expect(exit.stdout).toContain("[app] exiting with code 0");
    expect(exit.code).toBe(0);
  });

  it("installs no signal handlers: a SIGTERM reaches only the app's own handler and does not cancel the run", async () => {
    const root = await tmp("cairn-embed-cli-");
    const release = join(root, "release");
    const flowFile = join(repo, "test/cli/fixtures/embed/waits-for-file.flow.ts");
    let signalled = false;
    let released = false;
    const exit = await start(process.execPath, ["--import", "tsx", app, flowFile, root], {
      env: childEnv({ RELEASE_FILE: release }),
      onStdout: (out, child) => {
        if (!signalled && out.includes("[waits] started")) {
          signalled = true;
          child.kill("SIGTERM");
        }
        if (!released && out.includes("[app] own SIGTERM handler ran")) {
          released = true;
          void writeFile(release, "");
        }
      },
    }).done;
    expect(exit.stdout, exit.stderr).toContain("[waits] started; SIGTERM listeners: 1");
    expect(exit.stdout).toContain("[app] own SIGTERM handler ran");
    expect(exit.stdout + exit.stderr).not.toContain("cancelling the run");
    expect(exit.stdout).toContain("[app] cli() resolved 0");
    expect(exit.stdout).toContain("[app] exiting with code 0");
    expect(exit.code).toBe(0);
  });
});
