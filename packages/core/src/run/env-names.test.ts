import { describe, expect, it } from "vitest";
import { misspeltVariables, unsaidMisspeltVariables } from "./env-names.ts";

describe("misspeltVariables", () => {
  // Each was ignored without a word: the run used the embedded store, or a lenient cache.
  it.each([
    ["CAIRN_CACHE_URI", "CAIRN_CACHE_URL"],
    ["CAIRN_TRACKING_URI", "MLFLOW_TRACKING_URI"],
    ["MLFLOW_TRACKING_URL", "MLFLOW_TRACKING_URI"],
    ["CAIRN_CACHE_STICT", "CAIRN_CACHE_STRICT"],
    ["MLFLOW_EXPERIMENT", "MLFLOW_EXPERIMENT_ID"],
  ])("%s: did you mean %s?", (name, meant) => {
    expect(misspeltVariables({ [name]: "x", PATH: "/bin" })).toEqual([`${name} is not a variable Cairn or MLflow reads (did you mean ${meant}?): it is ignored.`]);
  });

  it.each(["CAIRN_CACHE_URL", "MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL", "CAIRN_TEST_PYTHON", "CAIRN_TOKEN", "MY_CAIRN_CACHE_URI", "HOME"])("%s is said nothing of", (name) => {
    expect(misspeltVariables({ [name]: "x" })).toEqual([]);
  });
});

describe("unsaidMisspeltVariables", () => {
  it("gives each line once per process, whoever asks first (cairn at its start, or run())", () => {
    expect(unsaidMisspeltVariables({ CAIRN_CACHE_URJ: "x" })).toEqual(["CAIRN_CACHE_URJ is not a variable Cairn or MLflow reads (did you mean CAIRN_CACHE_URL?): it is ignored."]);
    expect(unsaidMisspeltVariables({ CAIRN_CACHE_URJ: "x" })).toEqual([]);
    expect(unsaidMisspeltVariables({ CAIRN_CACHE_URJ: "x", MLFLOW_TRACKING_URJ: "y" })).toEqual([
      "MLFLOW_TRACKING_URJ is not a variable Cairn or MLflow reads (did you mean MLFLOW_TRACKING_URI?): it is ignored.",
    ]);
  });
});
