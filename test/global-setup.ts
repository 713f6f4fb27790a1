/**
 * Cairn's bundle (packages/cli/.bundle, what `cairn` runs from) is brought up to date once here,
 * before test files start `cairn` processes side by side.
 *
 * Every temp folder the tests (and the servers and child processes they start) make goes
 * into one folder per test run, removed at the end: TMPDIR is set before the workers start,
 * so `os.tmpdir()` and Python's `tempfile` both use it.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
// @ts-expect-error: a JavaScript module without types
import { ensureBundle } from "../packages/cli/bin/bundle.mjs";

export default async function setup(): Promise<() => void> {
  await ensureBundle();
  const before = process.env.TMPDIR;
  const dir = mkdtempSync(join(tmpdir(), "cairn-tests-"));
  // Like /tmp itself: servers that run as another user (postgres, when the tests run as
  // root) must reach their folders inside it. mkdtemp makes it 0700.
  chmodSync(dir, 0o1777);
  process.env.TMPDIR = dir;
  return () => {
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  };
}
