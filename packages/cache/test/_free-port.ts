import { createServer } from "node:net";

/** A TCP port free on 127.0.0.1 right now (another process may still take it first). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Finds `name` on PATH (or in `extraDirs`), or `undefined`. */
export async function findBinary(name: string, extraDirs: string[] = []): Promise<string | undefined> {
  const { access, constants } = await import("node:fs/promises");
  const { delimiter, join } = await import("node:path");
  for (const dir of [...(process.env.PATH ?? "").split(delimiter), ...extraDirs]) {
    if (!dir) continue;
    try {
      await access(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // Not here.
    }
  }
  return undefined;
}
