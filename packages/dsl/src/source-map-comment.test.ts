/**
 * sourceMapPlace: one shape for both places a module's map can be, so that its reader reads the
 * map (inline, or from its file) and resolves its sources against `file` without asking which.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { sourceMapPlace } from "./source-map-comment.ts";

const dir = join("/", "work", "app", "dist");
const module = join(dir, "flow.js");
const map = '{"version":3,"sources":["../src/flow.ts"],"mappings":""}';

describe("sourceMapPlace", () => {
  it("an inline map: its text, resolved against the module itself", () => {
    const base64 = `//# sourceMappingURL=data:application/json;charset=utf-8;base64,${Buffer.from(map).toString("base64")}`;
    expect(sourceMapPlace(module, `export {};\n${base64}\n`)).toEqual({ file: module, inline: map });
    expect(sourceMapPlace(module, `export {};\n//# sourceMappingURL=data:application/json,${encodeURIComponent(map)}`)).toEqual({ file: module, inline: map });
  });

  it("a map in a file: that file, to be read, its sources resolved against it", () => {
    expect(sourceMapPlace(module, "export {};\n//# sourceMappingURL=maps/flow.js.map\n")).toEqual({ file: join(dir, "maps", "flow.js.map") });
    expect(sourceMapPlace(module, `export {};\n//# sourceMappingURL=${pathToFileURL("/elsewhere/flow.js.map").href}`)).toEqual({ file: "/elsewhere/flow.js.map" });
  });

  it("none: no comment, one that is not the last line's, a URL off this disk", () => {
    expect(sourceMapPlace(module, "export {};\n")).toBeUndefined();
    expect(sourceMapPlace(module, 'const s = "//# sourceMappingURL=flow.js.map";')).toBeUndefined();
    expect(sourceMapPlace(module, "export {};\n//# sourceMappingURL=https://example.com/flow.js.map")).toBeUndefined();
  });
});
