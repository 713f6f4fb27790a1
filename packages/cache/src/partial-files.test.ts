import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { partialPath, sweepDeadPartials } from "./partial-files.ts";
import { formatOwner } from "./process-owner.ts";

describe("partial downloads", () => {
  it("are named beside their place after this process, another name each time", () => {
    const one = partialPath("/x/d");
    expect(dirname(one)).toBe("/x");
    expect(basename(one).startsWith(`d.part-${formatOwner()}-`)).toBe(true);
    expect(partialPath("/x/d")).not.toBe(one);
  });

  it("are swept when their owner is a process of this host that is gone; others' and other names are kept", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-partials-"));
    try {
      const ended = formatOwner({ host: hostname(), pid: spawnSync(process.execPath, ["-e", ""]).pid! });
      const kept = [
        "d",
        basename(partialPath(join(dir, "d"))), // this process's
        `d.part-${formatOwner({ host: `not-${hostname()}`, pid: 1 })}-0123456789ab`, // another host's: nothing here can tell
        `d.part-${ended}-notahexrandom`, // not a name Cairn writes
        "shard.part-00042-ab12cd34", // a name of the user's, as the artifact was named
      ];
      const swept = [`d.part-${ended}-0123456789ab`, `f.txt.part-${ended}-ba9876543210`];
      await mkdir(join(dir, swept[0]!));
      await writeFile(join(dir, swept[0]!, "f1.txt"), "half");
      for (const name of [...kept.slice(1), swept[1]!]) await writeFile(join(dir, name), "x");
      await mkdir(join(dir, "d"));
      await sweepDeadPartials(dir);
      expect((await readdir(dir)).sort()).toEqual([...kept].sort());
      await sweepDeadPartials(join(dir, "no-such-folder")); // nothing to sweep, no error
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
