import { describe, expect, it } from "vitest";
import { misspeltVariables } from "./env-names.ts";

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
