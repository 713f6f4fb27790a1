import { describe, expect, it } from "vitest";
import type { FlowDefinition } from "../definition/flow-definition.ts";
import { OptionError } from "../errors.ts";
import { startFlowRun } from "../run/flow-run.ts";
import { type OwnedDispatcher, openQueue, registerQueueScheme } from "./dispatch.ts";

describe("run({ queue }): the queue's dispatcher by the URL's scheme", () => {
  it("says which import registers a queue when none is registered, without the URL's password", async () => {
    const error = (await openQueue(`redis://cairn:"pa'ss"@queue-host:6379`).then(() => undefined, (e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(OptionError);
    expect(error.message).toContain(`import "@cairn/worker/register"`);
    expect(error.message).toContain("queue-host:6379");
    expect(error.message).not.toContain("pa'ss");
  });

  it("opens a URL of a registered scheme with its factory, and names the registered schemes for any other", async () => {
    const opened: string[] = [];
    const fake: OwnedDispatcher = { open: () => {}, run: async () => ({ ok: true, outputs: {}, attempts: 1 }), close: async () => {} };
    registerQueueScheme(["Fake"], (url) => (opened.push(url), fake));
    expect(await openQueue("fake://host:1")).toBe(fake);
    expect(opened).toEqual(["fake://host:1"]);
    await expect(openQueue("amqp://host")).rejects.toThrow(/Expected `queue` to be a queue URL \(fake:\/\/\.\.\.\), got "amqp:\/\/host"/);
    await expect(openQueue(42)).rejects.toThrow(OptionError);
  });

  it("takes a queue or a dispatcher, not both", async () => {
    const dispatcher = { open: () => {}, run: async () => ({ ok: true as const, outputs: {}, attempts: 1 }) };
    await expect(startFlowRun({} as FlowDefinition, { queue: "redis://host:6379", dispatcher })).rejects.toThrow(
      "Expected `queue` to be unset when `dispatcher` is given (one or the other)",
    );
  });
});
