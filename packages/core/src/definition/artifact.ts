/**
 * A file or folder a task produced. Artifacts travel between tasks as plain JSON
 * objects, so they survive the outputs manifest and the cache unchanged; the
 * cache key sees an artifact as the sha256 of its content, never its path.
 */
export interface Artifact {
  /** Marks the object as an artifact. */
  readonly kind: "cairn.artifact";
  /** Absolute local path of the file or folder. */
  readonly path: string;
  /** Path inside the producing run's artifacts (e.g. `data.csv`). */
  readonly artifactPath: string;
  /** The run that logged it, when tracked. */
  readonly runId?: string;
  /** sha256 of the content, once computed. */
  readonly digest?: string;
  /** Size in bytes, once known. */
  readonly size?: number;
  /**
   * For a folder, once its digest is computed: each folder in it (with `/`, the folder itself as
   * `.`) that holds no file at any depth. Its digest counts them, and MLflow's artifact store keeps
   * files alone: a download of the folder is given them back before its digest is checked. Absent
   * for a file, and for a folder recorded by a Cairn before it was kept.
   */
  readonly emptyFolders?: readonly string[];
}

/** True when `value` is an Artifact. */
export function isArtifact(value: unknown): value is Artifact {
  return typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === "cairn.artifact";
}
