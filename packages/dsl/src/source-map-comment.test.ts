/**
 * sourceMapPlace: one shape for both places a module's map can be, so that its reader reads the
 * map (inline, or from its file) and resolves its sources against `file` without asking which.
 * mappedSource: the one lookup from that place to the map and its one source, which the reader
 * of compiled modules and the resolver of the CLI's compiled imports each wrote out before.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { mappedSource, sourceMapPlace } from "./source-map-comment.ts";

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

describe("mappedSource", () => {
  it("an inline map's one source, resolved against the module; a map file's, from the text its caller read, against that file", () => {
    const inline = sourceMapPlace(module, `export {};\n//# sourceMappingURL=data:application/json,${encodeURIComponent(map)}`)!;
    expect(mappedSource(inline)).toEqual({ payload: JSON.parse(map), source: join("/", "work", "app", "src", "flow.ts") });
    const inFile = sourceMapPlace(module, "export {};\n//# sourceMappingURL=maps/flow.js.map\n")!;
    expect(mappedSource(inFile, map)?.source).toBe(join(dir, "src", "flow.ts"));
  });

  it("none: a map file not read, text that is no map, a map of several sources", () => {
    expect(mappedSource({ file: join(dir, "flow.js.map") })).toBeUndefined();
    expect(mappedSource({ file: module, inline: "not json" })).toBeUndefined();
    expect(mappedSource({ file: module, inline: '{"version":3,"sources":["a.ts","b.ts"],"mappings":""}' })).toBeUndefined();
  });
});
