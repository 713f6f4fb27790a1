/**
 * The Node versions Cairn needs, said once for all: every package's `engines` (what npm warns
 * about, EBADENGINE) and the README agree. On Node 20.12–20.18 `require("cairn-dag")` fails with
 * Node's ERR_REQUIRE_ESM (the packages are ES modules only), while `engines` said `>=20.12`, so
 * npm installed without a word there.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { expect, it } from "vitest";

const repo = resolve(import.meta.dirname, "..");
const ENGINES = "^20.19.0 || >=22.12.0";

it("every package's engines say the Node the README says, one that can require an ES module", () => {
  const manifests = ["package.json", ...readdirSync(join(repo, "packages")).map((dir) => join("packages", dir, "package.json"))];
  const engines = Object.fromEntries(manifests.map((path) => [path, (JSON.parse(readFileSync(join(repo, path), "utf8")) as { engines?: { node?: string } }).engines?.node]));
  expect(engines).toEqual(Object.fromEntries(manifests.map((path) => [path, ENGINES])));
  const readme = readFileSync(join(repo, "README.md"), "utf8");
  expect(readme).toContain("In your own project (Node ≥ 20.19, or ≥ 22.12 on Node 22,");
  expect(readme).toContain(`the packages' \`engines\` say \`${ENGINES}\``);
  expect(readme).toContain("Needs Node ≥ 20.19 (22: ≥ 22.12)");
  // No older floor left anywhere in it.
  expect(readme).not.toMatch(/Node ≥ 20\.1[0-8]\b/);
});
