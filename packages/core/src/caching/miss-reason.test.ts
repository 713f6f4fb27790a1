import { describe, expect, it } from "vitest";
import { missReasonTag, parseMissReason } from "./miss-reason.ts";

describe("a recorded miss reason", () => {
  it("keeps that a foreign entry was another copy's of the run's own store (a restored .cairn), and where a new task's entries were looked for", () => {
    const copy = { kind: "foreign", tracker: { kind: "local", uri: "/w/.cairn" }, copy: true } as const;
    expect(parseMissReason(missReasonTag(copy))).toEqual(copy);
    const searched = { kind: "new", store: "/w/.cairn/cache", searched: "the cache store at /w/.cairn/cache and the index of experiment 3 in http://mlflow" } as const;
    expect(parseMissReason(missReasonTag(searched))).toEqual(searched);
    // Recorded before either: read as then.
    expect(parseMissReason('{"kind":"foreign","tracker":{"kind":"local","uri":"/w/.cairn"}}')).toEqual({ kind: "foreign", tracker: { kind: "local", uri: "/w/.cairn" } });
    expect(parseMissReason('{"kind":"new","store":"/w/.cairn/cache"}')).toEqual({ kind: "new", store: "/w/.cairn/cache" });
  });
});
