/**
 * The project's Python modules a script or notebook imports, however deep, as Python finds
 * them from the script's folder; read from files on disk.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunScope } from "@cairn/core";
import { notebookDependencies, pythonDependencies, shellDependencies } from "./python-deps.ts";

let dir: string;

async function files(tree: Record<string, string>): Promise<void> {
  for (const [name, text] of Object.entries(tree)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), text);
  }
}

const SCRIPT = [
  `import os, json`,
  `import numpy as np`,
  `from common import finish`,
  `import pkg.sub as s`,
  `from pkg import mod`,
  `from lib import (`,
  `    a,`,
  `    b,`,
  `)`,
  `from regpkg import (`,
  `    first,  # a comment in the list`,
  `    second,`,
  `)`,
  `from ns import nsmod`,
  `try: import tried`,
  `import sys; import semi`,
  `plugin = importlib.import_module("plug")`,
  `def main():`,
  `    from late import thing  # inside a function: it counts`,
].join("\n");

const deps = (code = SCRIPT) => pythonDependencies(code, dir, new RunScope(), join(dir, "train.py"));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cairn-python-deps-"));
  await files({
    "train.py": SCRIPT,
    "common.py": `from util import helper\n`,
    "util.py": `x = 1\n`,
    "pkg/__init__.py": ``,
    "pkg/sub.py": `from . import helpers\nfrom .deep.leaf import y\n`,
    "pkg/helpers.py": `h = 1\n`,
    "pkg/deep/leaf.py": `y = 2\n`,
    "pkg/mod.py": `m = 1\n`,
    "lib.py": `a = b = 1\n`,
    "late.py": `thing = 1\n`,
    "regpkg/__init__.py": ``,
    "regpkg/first.py": ``,
    "regpkg/second.py": ``,
    "ns/nsmod.py": `z = 1\n`,
    "tried.py": ``,
    "semi.py": ``,
    "plug.py": ``,
    "json/README": `a folder named like the standard library's json, with no module in it\n`,
  });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("pythonDependencies", () => {
  it("follows the project's modules however they are imported, however deep; not the standard library or packages", async () => {
    expect(Object.keys(await deps()).sort()).toEqual([
      "common.py",
      "late.py",
      "lib.py",
      "ns/nsmod.py",
      "pkg/__init__.py",
      "pkg/deep/leaf.py",
      "pkg/helpers.py",
      "pkg/mod.py",
      "pkg/sub.py",
      "plug.py",
      "regpkg/__init__.py",
      "regpkg/first.py",
      "regpkg/second.py",
      "semi.py",
      "tried.py",
      "util.py",
    ]);
  });

  it("an edit two imports away changes that file's digest only", async () => {
    const before = await deps();
    await files({ "util.py": `x = 2\n` });
    const after = await deps();
    expect(after["util.py"]).not.toBe(before["util.py"]);
    expect({ ...after, "util.py": "" }).toEqual({ ...before, "util.py": "" });
  });

  it("follows imports continued with a backslash, and an import after a comment that ends in one", async () => {
    const code = [
      `from regpkg import first, \\`,
      `    second`,
      `import util, \\`,
      `    tried`,
      `from \\`,
      `  pkg.deep.leaf import y`,
      `import os, \\\r`,
      `    semi`,
      `# a comment is not continued: C:\\`,
      `import plug`,
    ].join("\n");
    expect(Object.keys(await deps(code)).sort()).toEqual([
      "pkg/__init__.py",
      "pkg/deep/leaf.py",
      "plug.py",
      "regpkg/__init__.py",
      "regpkg/first.py",
      "regpkg/second.py",
      "semi.py",
      "tried.py",
      "util.py",
    ]);
  });

  it("finds nothing for a script that imports only packages", async () => {
    expect(await deps(`import pandas as pd\nfrom sklearn import datasets\n`)).toEqual({});
  });
});

describe("notebookDependencies", () => {
  const CELLS = [
    `import os\n%run nbhelper.py`,
    `%run -i runs/tool first-arg  # ".py" added, as IPython adds it`,
    `%run -m pkg.mod`,
    `%run $name.py`,
    `!python3 shelltool.py --out=x`,
    `listing = !cat listed.txt`,
    `!python3 shelltool.py --out model.bin | tee log.txt`,
    `%%bash\nbash cellrun.sh > out.log\n`,
  ];
  const nb = () => notebookDependencies(CELLS, dir, new RunScope());

  it("follows what %run runs (a path from the kernel's folder, or -m) and what it imports, and the files shell lines and %%bash cells name", async () => {
    await files({
      "nbhelper.py": `from util import x\n`,
      "runs/tool.py": `import near\nimport common\n`,
      "runs/near.py": ``,
      "shelltool.py": ``,
      "listed.txt": `a\n`,
      "model.bin": `written by the line, not read\n`,
      "log.txt": `written by the line, not read\n`,
      "cellrun.sh": `python3 celltool.py\n`,
      "celltool.py": ``,
      "out.log": `written by the cell, not read\n`,
    });
    expect(Object.keys(await nb()).sort()).toEqual([
      "cellrun.sh",
      "celltool.py",
      "common.py", // runs/tool.py imports it from the kernel's folder, second on its sys.path
      "nbhelper.py",
      "pkg/__init__.py",
      "pkg/mod.py",
      "runs/near.py", // from runs/tool.py's own folder, first on its sys.path
      "runs/tool.py",
      "shelltool.py",
      "util.py",
    ]);
  });

  it("an edit of a file that %run runs changes its digest", async () => {
    const before = await nb();
    await files({ "nbhelper.py": `from util import x\nx += 1\n` });
    const after = await nb();
    expect(after["nbhelper.py"]).not.toBe(before["nbhelper.py"]);
    expect({ ...after, "nbhelper.py": "" }).toEqual({ ...before, "nbhelper.py": "" });
  });
});

describe("shellDependencies", () => {
  it("follows the project's code files a shell script's words name, from its folder or the project's root, and a .py one's imports; never data or outputs", async () => {
    await files({
      ".git/HEAD": `the project's root is the folder that holds .git\n`,
      "sh/run.sh": [
        `#!/usr/bin/env bash`,
        `set -euo pipefail`,
        `python3 "$(dirname "$0")/helper.py" --x 1`,
        `python3 $(dirname $0)/second.py`,
        `python3 "$(dirname "\${BASH_SOURCE[0]}")/third.py"`,
        `bash "\${BASH_SOURCE%/*}"/inner.sh`,
        `cat conf/settings.yaml | wc -l`,
        `Rscript conf/fit.R --out model.bin -o out.json | tee log.txt`,
        `/usr/bin/python3 /etc/hosts`,
        `echo $HOME/home.py *.py`,
        `python3 helper.py > result.json`,
        `# commented.py is only in a comment`,
      ].join("\n"),
      "sh/helper.py": `import shlib\n`,
      "sh/shlib.py": ``,
      "sh/second.py": ``,
      "sh/third.py": ``,
      "sh/inner.sh": `awk -f sum.awk data.csv\n`,
      "sh/sum.awk": `{ s += $1 } END { print s }\n`,
      "sh/data.csv": `a,b\n`,
      "sh/model.bin": `written by a run\n`,
      "sh/out.json": `{}\n`,
      "sh/log.txt": `written by a run\n`,
      "conf/fit.R": `x <- 1\n`,
      "sh/result.json": `{}\n`,
      "sh/commented.py": ``,
      "sh/home.py": ``,
      "conf/settings.yaml": `k: 1\n`,
    });
    const script = join(dir, "sh", "run.sh");
    const found = await shellDependencies(script, new RunScope());
    // conf/settings.yaml and data.csv are data (declared with .codeFiles()); model.bin, out.json and log.txt are what a run writes.
    expect(Object.keys(found).sort()).toEqual(["../conf/fit.R", "helper.py", "inner.sh", "second.py", "shlib.py", "sum.awk", "third.py"]);
    await files({ "sh/shlib.py": `changed = 1\n` });
    const after = await shellDependencies(script, new RunScope());
    expect(after["shlib.py"]).not.toBe(found["shlib.py"]);
    expect(after["helper.py"]).toBe(found["helper.py"]);
  });
});
