import { SecretLeakError, SecretNotFoundError } from "../errors.ts";

/**
 * The secrets of one flow run: from a secrets file (all known up front) and from
 * the environment (known once a task asks). Every value handed out is remembered,
 * so outputs, params and tags that contain it are refused and log lines are masked.
 */
export class SecretRegistry {
  private readonly known = new Map<string, string>(); // value -> name

  constructor(
    private readonly fromFile: Readonly<Record<string, string>> = {},
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    for (const [name, value] of Object.entries(fromFile)) this.remember(name, value);
  }

  /** The secret's value; throws SecretNotFoundError naming the task when unset. */
  get(name: string, nodeId: string): string {
    const value = this.fromFile[name] ?? this.env[name];
    if (value === undefined || value === "") throw new SecretNotFoundError(name, nodeId);
    this.remember(name, value);
    return value;
  }

  /** Throws SecretLeakError when `value` (any JSON data) contains a secret's value. */
  assertClean(value: unknown, nodeId: string, where: string): void {
    if (this.known.size === 0) return;
    const text = typeof value === "string" ? value : JSON.stringify(value) ?? "";
    for (const [secret, name] of this.known) {
      if (text.includes(secret)) throw new SecretLeakError(nodeId, name, where);
    }
  }

  /** `text` with every secret value replaced by `***`. */
  mask(text: string): string {
    let out = text;
    for (const secret of this.known.keys()) out = out.split(secret).join("***");
    return out;
  }

  private remember(name: string, value: string): void {
    // Very short values would mask ordinary text everywhere; they are still refused in outputs by exact match.
    if (value.length > 0) this.known.set(value, name);
  }
}
