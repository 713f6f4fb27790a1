import { describe, expect, it } from "vitest";
import { clipMessage } from "./clip-message.ts";

const traceback = [
  'Task "fit": `python fit.py` exited with code 1. Last 9 lines of stderr:',
  "  | Traceback (most recent call last):",
  ...Array.from({ length: 6 }, (_, i) => `  |   File "/home/me/project/fit.py", line ${i + 10}, in step_${i}`),
  "  | ZeroDivisionError: division by zero",
  "The full output is in the task run's artifacts logs/stdout.txt and logs/stderr.txt.",
].join("\n");

describe("clipMessage", () => {
  it("returns a message that fits as it is", () => {
    expect(clipMessage(traceback, traceback.length)).toBe(traceback);
  });

  it("keeps the first line and the last lines, where a traceback's exception is, and counts the lines between", () => {
    const clipped = clipMessage(traceback, 300);
    expect(clipped.length).toBeLessThanOrEqual(300);
    const lines = clipped.split("\n");
    expect(lines[0]).toBe('Task "fit": `python fit.py` exited with code 1. Last 9 lines of stderr:');
    expect(lines[1]).toMatch(/^… \(\d+ lines left out\)$/);
    expect(lines.slice(-2)).toEqual(["  | ZeroDivisionError: division by zero", "The full output is in the task run's artifacts logs/stdout.txt and logs/stderr.txt."]);
    expect(clipped).not.toContain("Traceback (most recent call last)");
  });

  it("cuts a long first line and a long last line, keeping the last one's end", () => {
    const clipped = clipMessage(`${"a".repeat(400)}\nmiddle\n${"b".repeat(400)}END`, 200);
    expect(clipped.length).toBeLessThanOrEqual(200);
    expect(clipped).toMatch(/^a+…\n… \(1 line left out\)\n…b+END$/);
  });

  it("keeps both ends of a long one-line message, and no half of a surrogate pair", () => {
    const clipped = clipMessage(`start ${"😀".repeat(200)} ValueError: bad`, 100);
    expect(clipped).toMatch(/^start (😀)+ … \(\d+ characters left out\) … (😀)+ ValueError: bad$/u);
    expect(clipped.length).toBeLessThanOrEqual(110);
  });
});
