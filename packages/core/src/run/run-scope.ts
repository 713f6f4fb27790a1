/**
 * What the tasks of one flow run (or one `plan`/`explain`) share and forget with it: the
 * reads and digests of the project's code, a registry model's resolved version. A kind keeps
 * its "once per run" memos here, under a key of its own, rather than in its module, so two
 * flows running in one process never undo each other's, and nothing outlives the run.
 */

/** A key of per-run state, typed with the state it names. */
export type ScopeKey<T> = symbol & { readonly __state?: T };

/** A new key; `description` names it in a debugger. */
export function scopeKey<T>(description: string): ScopeKey<T> {
  return Symbol(description) as ScopeKey<T>;
}

/** The state of one flow run (see the module comment). */
export class RunScope {
  readonly #state = new Map<symbol, unknown>();
  /** Where {@link loadedState} keeps its state: this scope, unless it was given another. */
  readonly #loaded: RunScope;

  /**
   * `loaded`: the scope of the code this process has loaded, where {@link loadedState} keeps what
   * describes that code (a worker's flow module, loaded once: the files and package versions read
   * for its first run describe what every later run of it runs, whatever the disk says since).
   */
  constructor(options: { loaded?: RunScope } = {}) {
    this.#loaded = options.loaded ?? this;
  }

  /**
   * The state under `key`, made by `init` on the first ask.
   * @example
   * const MEMO = scopeKey<Map<string, Promise<string>>>("my-kind reads");
   * const reads = ctx.scope.state(MEMO, () => new Map());
   */
  state<T>(key: ScopeKey<T>, init: () => T): T {
    if (this.#state.has(key)) return this.#state.get(key) as T;
    const value = init();
    this.#state.set(key, value);
    return value;
  }

  /**
   * The state under `key` that describes code this process has loaded (what a function task's
   * module imports, and the versions of the packages it loads): the run's, or, given a `loaded`
   * scope, that scope's, kept as long as the code is. Code read from disk each time it runs (a
   * script a task starts) belongs in {@link state}.
   */
  loadedState<T>(key: ScopeKey<T>, init: () => T): T {
    return this.#loaded.state(key, init);
  }
}
