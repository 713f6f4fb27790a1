import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["packages/*/src/**/*.test.ts", "packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    globalSetup: ["./test/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // The postgres cache tests stop their server; @keyv/postgres's module-wide pg pool then
    // reports its idle clients' "terminating connection" (57P01) with no listener to take it.
    onUnhandledError: (error) => ((error as { code?: string }).code === "57P01" ? false : undefined),
    typecheck: {
      enabled: true,
      include: ["packages/*/src/**/*.test-d.ts", "packages/*/test/**/*.test-d.ts"],
      tsconfig: "./tsconfig.json",
    },
  },
});
