import { expectTypeOf, test } from "vitest";
import { flow, task, type Artifact, type Ref } from "@cairn/dsl";
import { notebook } from "./notebook.ts";

const publish = task("publish").input<{ page: Artifact }>().run(() => ({}));

test("a notebook's html output is there unless it is declared with html: false", () => {
  flow("f").build(() => {
    const n = notebook("n", "report.ipynb")({});
    expectTypeOf(n.html).toEqualTypeOf<Ref<Artifact>>();
    publish({ page: n.html });
    expectTypeOf(notebook("t", "report.ipynb", { html: true })({}).html).toEqualTypeOf<Ref<Artifact>>();

    const none = notebook("none", "report.ipynb", { html: false })({});
    expectTypeOf(none.notebook).toEqualTypeOf<Ref<Artifact>>();
    // @ts-expect-error -- declared with html: false, it renders no HTML
    publish({ page: none.html });
    const own = notebook("own", "report.ipynb", { html: false }).output<{ total: number }>()({});
    // @ts-expect-error -- .output<T>() keeps html absent
    own.html;
    expectTypeOf(own.total).toEqualTypeOf<Ref<number>>();

    // Known only when it runs: html may be absent, so a task that needs an Artifact does not take it.
    const flag: boolean = Math.random() > 0.5;
    const maybe = notebook("maybe", "report.ipynb", { html: flag })({});
    expectTypeOf(maybe.html).toEqualTypeOf<Ref<Artifact | undefined>>();
    // @ts-expect-error -- html may be absent
    publish({ page: maybe.html });
    return {};
  });
});
