/**
 * Test helper: a real headless Chromium (Debian's `chromium` package, installed by
 * scripts/setup-chromium.sh with apt-get when missing, as redis is by scripts/start-redis.sh),
 * driven by playwright-core, with a fresh profile and nothing that talks to the network on its own.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type BrowserContext, chromium } from "playwright-core";

const SETUP = fileURLToPath(new URL("../../../scripts/setup-chromium.sh", import.meta.url));

/** The flags every launch gets (playwright adds --headless and the profile folder itself). */
export const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** The browser's path, after installing it when missing. */
export async function chromiumPath(): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)("bash", [SETUP], { maxBuffer: 64 * 1024 * 1024 });
    return stdout.trim().split("\n").pop()!;
  } catch (error) {
    throw new Error(`chromium is not installed and installing it failed (bash scripts/setup-chromium.sh):\n${(error as { stderr?: string }).stderr ?? error}`);
  }
}

/** A headless Chromium context with a fresh --user-data-dir; `close()` ends it and removes the profile. */
export async function launchChromium(options: { javaScriptEnabled?: boolean } = {}): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const executablePath = await chromiumPath();
  const profile = await mkdtemp(join(tmpdir(), "cairn-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: CHROMIUM_FLAGS,
    javaScriptEnabled: options.javaScriptEnabled ?? true,
    viewport: { width: 1280, height: 900 },
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
