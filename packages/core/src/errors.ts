/**
 * Every error Cairn's engine raises. Each class sets `name`, carries typed
 * fields, a stable `code` and a static `is()` that works across copies of Cairn
 * (use it instead of `instanceof`), and says what was expected, what arrived,
 * where, and how to fix it.
 */

import { inspect } from "node:util";
import { CairnError, quotesHint } from "@cairn/cache";
import { isError, toErrorInfo } from "./run/events.ts";
import { redactCredentials } from "./run/redact.ts";

/**
 * Base class of every Cairn error, the cache's among them; `CairnError.is(error)` catches
 * them all. It lives in @cairn/cache, which depends on nothing of Cairn's.
 */
export { CairnError };

// ---------------------------------------------------------------- definition

/** The flow definition is invalid; raised before anything runs. */
export class FlowValidationError extends CairnError {
  static override readonly code: string = "CAIRN_FLOW_VALIDATION";
  override name = "FlowValidationError";
  constructor(
    message: string,
    readonly flowName: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The graph has a cycle; `cycle` lists the node ids around it. */
export class CycleError extends FlowValidationError {
  static override readonly code: string = "CAIRN_CYCLE";
  override name = "CycleError";
  constructor(
    flowName: string,
    readonly cycle: string[],
  ) {
    super(
      `Flow "${flowName}" has a cycle: ${[...cycle, cycle[0]].join(" -> ")}. ` +
        `A task cannot depend, directly or through others, on its own outputs; remove one of these dependencies.`,
      flowName,
    );
  }
}

/** Two nodes of one flow have the same id. */
export class DuplicateNodeError extends FlowValidationError {
  static override readonly code: string = "CAIRN_DUPLICATE_NODE";
  override name = "DuplicateNodeError";
  constructor(
    flowName: string,
    readonly nodeId: string,
    /**
     * The task one of the two nodes got its id from without an `{ id }` (`load` for its second
     * call's `load-2`), when the other was given it: the user may not know the first is there.
     */
    automaticOf?: string,
  ) {
    super(
      automaticOf === undefined
        ? `Flow "${flowName}" has two nodes named "${nodeId}". Node ids must be unique: ` +
            `give one of them another id, e.g. task(args, { id: "${nodeId}-2" }).`
        : `Flow "${flowName}" has two nodes named "${nodeId}": one given as { id: "${nodeId}" }, the other a call of task "${automaticOf}" ` +
            `without an { id }, which gets the id "${nodeId}" (calls of a task get its name, then ${automaticOf}-2, ${automaticOf}-3, ...). ` +
            `Node ids must be unique: give the { id } another name, e.g. { id: "${automaticOf}-other" }, or give that call an { id } of its own.`,
      flowName,
    );
  }
}

/**
 * An input is wired to a node that is not part of the flow, or (`source: "param"`) to a param of
 * another flow's build, which must not bind to this flow's param of the same name.
 */
export class UnknownNodeError extends FlowValidationError {
  static override readonly code: string = "CAIRN_UNKNOWN_NODE";
  override name = "UnknownNodeError";
  constructor(
    flowName: string,
    readonly nodeId: string,
    readonly input: string,
    /** The node id, or for a param ref the param's name. */
    readonly target: string,
    readonly source: "node" | "param" = "node",
    /**
     * `after`: the node is named in the task's `after` option (`input` is then "after"), not wired
     * to an input; with `meant`, this flow's node likely meant (a typo), with `otherFlow`, the
     * node is a handle made by another flow's build.
     */
    options: { after?: boolean; meant?: string; otherFlow?: boolean } = {},
  ) {
    super(
      options.after
        ? options.otherFlow
          ? `Task "${nodeId}" option \`after\` names node "${target}" of another flow's build function, not one of flow "${flowName}"'s own. ` +
            `Pass a node made inside this flow's build function (nodes do not carry over between flows).`
          : `Task "${nodeId}" option \`after\` names node "${target}", which is not part of flow "${flowName}"` +
            `${options.meant !== undefined ? ` (did you mean "${options.meant}"?)` : ""}. ` +
            `Name a node of this flow: the node a task call returned, or its id (the task's name, then name-2, name-3, ..., or the { id } it was given).`
        : source === "param"
        ? `Task "${nodeId}" input "${input}" is wired to param "${target}" from another flow's build function, not flow "${flowName}"'s own. ` +
            `Wire it to the \`params\` this flow's build function receives (references do not carry over between flows).`
        : `Task "${nodeId}" input "${input}" is wired to node "${target}", which is not part of flow "${flowName}". ` +
            `Wire it to a node created inside this flow's build function (references do not carry over between flows).`,
      flowName,
    );
  }
}

/**
 * A required input has no value. For a map or sweep node, `fanOut` says what gives each item its
 * inputs (a map's `as`, a sweep's search space, and `with`): the fix is there, not in a call.
 */
export class MissingInputError extends FlowValidationError {
  static override readonly code: string = "CAIRN_MISSING_INPUT";
  override name = "MissingInputError";
  constructor(
    flowName: string,
    readonly nodeId: string,
    readonly input: string,
    readonly fanOut?: { readonly kind: "map"; readonly as: string } | { readonly kind: "sweep" },
  ) {
    super(missingInputMessage(flowName, nodeId, input, fanOut), flowName);
  }
}

function missingInputMessage(flowName: string, nodeId: string, input: string, fanOut: MissingInputError["fanOut"]): string {
  const missing = `in flow "${flowName}" is missing its required input "${input}"`;
  if (fanOut?.kind === "map") {
    return (
      `Map "${nodeId}" ${missing}: each item is passed as "${fanOut.as}" (\`as: "${fanOut.as}"\`), and \`with\` does not give "${input}". ` +
      `Pass the items as "${input}" (\`as: "${input}"\`), or give "${input}" in \`with\`, as a literal or a reference to another task's output.`
    );
  }
  if (fanOut?.kind === "sweep") {
    return (
      `Sweep "${nodeId}" ${missing}: no point of its search space (\`over\`) holds "${input}", and \`with\` does not give it. ` +
      `Add "${input}" to the search space, or give it in \`with\`, as a literal or a reference to another task's output.`
    );
  }
  return `Task "${nodeId}" ${missing}. Pass it when calling the task in build(), as a literal or a reference to another task's output.`;
}

/** A value cannot be stored as JSON: a function, a circular object, a class instance, NaN. */
export class NotSerializableError extends CairnError {
  static override readonly code: string = "CAIRN_NOT_SERIALIZABLE";
  override name = "NotSerializableError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly where: string,
    /** Where in the value, `a.b[0]`; empty for the value itself. */
    readonly path: string,
    readonly got: string,
    /** How to fix it, when writing it as an artifact does not apply (a param). */
    fix = "Convert it to plain data, or write it with ctx.artifacts.write().",
  ) {
    super(
      `${where}${path ? ` at "${path}"` : ""} cannot be serialized: expected JSON data (string, finite number, boolean, null, ` +
        `plain object, array) or an Artifact, got ${got}. ${fix}`,
    );
  }
}

// ---------------------------------------------------------------- params and options

/** A flow param failed validation (from `-p` or `run({ params })`). */
export class ParamError extends CairnError {
  static override readonly code: string = "CAIRN_PARAM";
  override name = "ParamError";
  constructor(
    message: string,
    readonly flowName: string,
    readonly param?: string,
  ) {
    super(message);
  }
}

/** An option passed to the engine is invalid. */
export class OptionError extends CairnError {
  static override readonly code: string = "CAIRN_OPTION";
  override name = "OptionError";
  constructor(
    readonly option: string,
    readonly expected: string,
    readonly got: unknown,
    /** The message, where "Expected `option` to be ..., got ..." does not say it (a misuse in build(), not a bad value). */
    message?: string,
    /** Why `got` is refused, where a caller words it for its own user: `root`'s (`rootRefusal`), which the CLI says for `--root`. */
    readonly reason?: string,
    /** `expected` names only the closest few of many accepted values (a typo among 200 tasks): a caller may say where all are listed. */
    readonly closestOnly = false,
  ) {
    super(message ?? `Expected \`${option}\` to be ${expected}, got ${describeValue(got)}.`);
  }
}

// ---------------------------------------------------------------- running

/** A task's inputs failed its input schema at run time. */
export class InputValidationError extends CairnError {
  static override readonly code: string = "CAIRN_INPUT_VALIDATION";
  override name = "InputValidationError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly nodeId: string,
    readonly issues: string[],
  ) {
    super(
      `Task "${nodeId}" got inputs that do not match its input schema:\n  - ${issues.join("\n  - ")}\n` +
        `Fix the values passed to "${nodeId}" in build(), or the upstream task that produces them.`,
    );
  }
}

/**
 * A task or a flow output refers to an output that a process task (script, notebook, ...) never
 * wrote, or that its options leave out (a notebook's `html` under `html: false`): the referring task (or the map, or the condition) fails, or the flow does (a flow
 * output), naming the task and what it did write.
 */
export class MissingOutputError extends CairnError {
  static override readonly code: string = "CAIRN_MISSING_OUTPUT";
  override name = "MissingOutputError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    /** The task that did not write the output. */
    readonly upstream: string,
    /** The output's name. */
    readonly output: string,
    /** The outputs it did write. */
    readonly outputs: readonly string[],
    /** How that task writes its outputs (its kind's words), or why its options leave the output out and how to have it. */
    writesOutputs: string | { readonly absent: string },
    /** The task that refers to it, when known. */
    readonly nodeId?: string,
    /** The flow output that refers to it, when that is what does. */
    readonly flowOutput?: string,
  ) {
    const by =
      flowOutput !== undefined ? `Flow output "${flowOutput}" is ${upstream}.${output}, but ` : nodeId !== undefined ? `Task "${nodeId}" takes ${upstream}.${output}, but ` : "";
    const written = `${by}task "${upstream}" has no output "${output}" (its outputs: ${outputs.length ? outputs.map((o) => `"${o}"`).join(", ") : "none"})`;
    super(
      typeof writesOutputs === "string"
        ? `${written}: it ended without writing it. ` +
            `Make "${upstream}" write it (${writesOutputs}), or give "${upstream}" an .output(schema) to have its outputs checked when it ends.`
        : `${written}: ${writesOutputs.absent}.`,
    );
  }
}

/** A task's outputs failed its output schema. */
export class OutputValidationError extends CairnError {
  static override readonly code: string = "CAIRN_OUTPUT_VALIDATION";
  override name = "OutputValidationError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly nodeId: string,
    readonly issues: string[],
    /** What to do, when more is known than "fix what it returns" (a script that wrote no outputs). */
    fix = "Fix what the task returns, or its .output() schema.",
  ) {
    super(`Task "${nodeId}" returned outputs that do not match its output schema:\n  - ${issues.join("\n  - ")}\n${fix}`);
  }
}

/**
 * A task kind's run returned something other than an object of outputs (an array, a number, a
 * string, null): the fields other tasks take from it (`q.rows`) would be `undefined`. The task
 * fails, uncached; `got` shows what arrived, its secrets masked.
 */
export class KindOutputError extends CairnError {
  static override readonly code: string = "CAIRN_KIND_OUTPUT";
  override name = "KindOutputError";
  /** The same code returns the same shape again. */
  override get retryable(): boolean {
    return false;
  }
  /** What the run returned, described and previewed (`an array of 1: [ { y: 5 } ]`). */
  readonly got: string;
  constructor(
    readonly nodeId: string,
    /** The task's kind (`definition.kind`). */
    readonly kind: string,
    returned: unknown,
    mask: (text: string) => string,
    /** How the kind's tasks write their outputs (`definition.writesOutputs`), when it says. */
    writesOutputs?: string,
  ) {
    const got = describeThrown(returned, mask);
    super(
      `Task "${nodeId}" (kind \`${kind}\`) returned ${got}, not an object of outputs: a kind's run must return an object ` +
        `whose fields are the task's outputs (\`{ rows }\`), or nothing. ` +
        (writesOutputs ? `Its tasks write their outputs ${writesOutputs}. ` : "") +
        `Fix the run of kind \`${kind}\` (wrap a list or a value in an object: \`{ items: [...] }\`), or, for a kind whose output is any JSON value, set \`anyOutput: true\` beside its definition in kindTask().`,
    );
    this.got = got;
  }
}

/** One attempt of a task ran longer than its timeout. */
export class TaskTimeoutError extends CairnError {
  static override readonly code: string = "CAIRN_TASK_TIMEOUT";
  override name = "TaskTimeoutError";
  constructor(
    readonly nodeId: string,
    readonly timeoutMs: number,
    readonly attempt: number,
    /**
     * Set when the attempt returned or threw only after its timeout, because synchronous code
     * held Node's event loop so that the timeout's timer could not fire: how long it ran, in ms.
     */
    readonly ranMs?: number,
  ) {
    super(
      ranMs === undefined
        ? `Task "${nodeId}" attempt ${attempt} timed out after ${timeoutMs} ms. ` + `Raise it with .timeout(ms), or make the task faster.`
        : `Task "${nodeId}" attempt ${attempt} ran ${ranMs} ms, past its timeout of ${timeoutMs} ms: synchronous code (a loop that never awaits) ` +
            `blocked Node's event loop, so the timeout could not stop it, and what the attempt returned is dropped. ` +
            `Split the work with awaits (or move it to a worker thread or a script task), or raise .timeout(ms).`,
    );
  }
}

/**
 * A task threw something that is not an Error; the thrown value is kept in `thrown`, and the
 * message shows its beginning (an object's, an array's: `{ code: 42, msg: 'obj' }`).
 */
export class NonErrorThrownError extends CairnError {
  static override readonly code: string = "CAIRN_NON_ERROR_THROWN";
  override name = "NonErrorThrownError";
  /**
   * @param mask applied to the preview of `thrown` before it is cut to its first
   *   {@link THROWN_PREVIEW_LENGTH} characters: a secret cut in two is no longer recognised
   *   where the message is masked later.
   */
  constructor(
    readonly nodeId: string,
    readonly thrown: unknown,
    mask: (text: string) => string = (text) => text,
  ) {
    super(
      `Task "${nodeId}" threw a non-Error value: ${describeThrown(thrown, mask)}. ` +
        `Throw an Error (throw new Error("...")) so the message and stack are kept.`,
    );
  }
}

/** How much of a thrown non-Error object's text a {@link NonErrorThrownError}'s message shows. */
const THROWN_PREVIEW_LENGTH = 200;

/**
 * `thrown` as {@link describeValue} says it, and for an object, an array or a function also
 * its beginning as `util.inspect` shows it, credentials redacted by key name (redactCredentials):
 * what was thrown is all the user has to find the throw by, as it has no stack. Bounded however large the value (depth, items, string lengths),
 * and never throws (a Proxy's trap may): then the description alone.
 */
function describeThrown(thrown: unknown, mask: (text: string) => string): string {
  if (typeof thrown === "string") return describeValue(mask(thrown));
  if ((typeof thrown !== "object" || thrown === null) && typeof thrown !== "function") return describeValue(thrown);
  let what = "an object";
  let text: string;
  try {
    what = describeValue(thrown);
    // String lengths bounded past the cut, so a string cut by inspect is never cut within what is shown.
    // Redacted first: a token the task read from the environment itself is no secret the mask knows.
    text = mask(inspect(redactCredentials(thrown), { depth: 2, maxArrayLength: 20, maxStringLength: 4 * THROWN_PREVIEW_LENGTH, breakLength: Infinity, compact: true }));
  } catch {
    return what;
  }
  text = text.replace(/\s+/g, " ");
  return `${what}: ${text.length > THROWN_PREVIEW_LENGTH ? `${text.slice(0, THROWN_PREVIEW_LENGTH - 1)}…` : text}`;
}

/**
 * An error escaped every handler while a flow ran: an uncaught exception (a throw in a timer or
 * callback) or an unhandled promise rejection, which would have ended the process. `nodeId` is
 * the task whose code it came from (its async context), when it can be told; the error itself
 * is the `cause`. Not retried: the flow stops.
 */
export class ProcessCrashError extends CairnError {
  static override readonly code: string = "CAIRN_PROCESS_CRASH";
  override name = "ProcessCrashError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly how: "uncaught-exception" | "unhandled-rejection",
    readonly nodeId: string | undefined,
    error: unknown,
  ) {
    const what = how === "uncaught-exception" ? "an uncaught exception" : "an unhandled promise rejection";
    const where = nodeId === undefined ? "outside any task's code" : `in the code of task "${nodeId}"`;
    const fix =
      nodeId === undefined
        ? "Catch it where it is thrown."
        : "Await or catch every promise the task starts, and catch errors in its timers and callbacks, so they fail the task through its own promise.";
    super(`The process met ${what} ${where}: ${describeCrash(error)}. It would have ended the process, so the flow was stopped as failed. ${fix}`, { cause: error });
  }
}

/**
 * A task's code called `process.exit()` while a flow ran: Cairn refuses it (the runs could not
 * be recorded) and fails the task instead.
 */
export class TaskExitError extends CairnError {
  static override readonly code: string = "CAIRN_TASK_EXIT";
  override name = "TaskExitError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly nodeId: string,
    readonly exitCode: unknown,
  ) {
    super(
      `Task "${nodeId}" called process.exit(${exitCode === undefined ? "" : inspect(exitCode)}) while the flow ran: the process would have ended with its runs unrecorded, so the task fails instead. ` +
        `Throw an Error to fail a task, or return to end it.`,
    );
  }
}

/** What crashed: an Error's name and message, anything else as util.inspect shows its beginning, credentials redacted by key name. */
function describeCrash(error: unknown): string {
  if (isError(error)) {
    // Where it was thrown: the first frame of its stack, as no handler of the task's own shows it.
    const at = typeof error.stack === "string" ? /\n\s+at (.+)/.exec(error.stack)?.[1] : undefined;
    return `${error.name}: ${error.message}${at ? ` (at ${at})` : ""}`;
  }
  try {
    // Redacted by key name as describeThrown does: a rejected `{ headers: { authorization } }` would put the token in the message.
    const text = inspect(redactCredentials(error), { depth: 2, breakLength: Infinity, maxArrayLength: 10, maxStringLength: 200 });
    return text.length > 300 ? `${text.slice(0, 297)}...` : text;
  } catch {
    return "a value that cannot be shown";
  }
}

/** The task or flow was cancelled (run.cancel(), an AbortSignal, Ctrl-C). */
export class CancelledError extends CairnError {
  static override readonly code: string = "CAIRN_CANCELLED";
  override name = "CancelledError";
  constructor(readonly reason?: unknown) {
    const why = cancelReason(reason);
    super(`Cancelled${why ? `: ${why.replace(/\.$/, "")}` : ""}.`);
  }
}

/** What a cancel was given as its reason (`run.cancel(reason)`, `signal.abort(reason)`), as text; "" for none. */
export function cancelReason(reason: unknown): string {
  if (isError(reason)) return reason.message;
  if (!reason) return "";
  if (typeof reason !== "object") return String(reason);
  // An object given as the reason: its own message, else what it holds (not "[object Object]").
  const message = (reason as { message?: unknown }).message;
  if (typeof message === "string" && message) return message;
  const text = inspect(reason, { depth: 2, breakLength: Infinity, maxArrayLength: 10, maxStringLength: 200 });
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}

/**
 * Thrown by a task to say that trying again cannot help (bad credentials, a record that
 * does not exist): the scheduler does not retry it, whatever `.retries(n)` says, and the
 * task fails with it.
 * @example
 * throw new NonRetryableError("the API refused our credentials", { cause: error });
 */
export class NonRetryableError extends CairnError {
  static override readonly code: string = "CAIRN_NON_RETRYABLE";
  override name = "NonRetryableError";
  override get retryable(): boolean {
    return false;
  }
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * A secret was asked for and is not set; or, with `worker`, a secret the flow run knows from the
 * start (its --secrets file) is not set on the worker that took the task.
 */
export class SecretNotFoundError extends CairnError {
  static override readonly code: string = "CAIRN_SECRET_NOT_FOUND";
  override name = "SecretNotFoundError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly secret: string,
    readonly nodeId: string,
    /** The worker (its id, as `cairn workers` lists it) that lacks a secret the run's coordinator knows. */
    readonly worker?: string,
    /** With `worker`: how long the task waited for a worker that has it, and which others refused it (a sentence). */
    waited?: string,
  ) {
    super(
      worker === undefined
        ? `Task "${nodeId}" asked for secret "${secret}", which is not set. ` +
            `Set the environment variable ${secret}, or put ${secret}=... in a file passed with --secrets FILE (or run({ secrets })).`
        : `Task "${nodeId}" was not run by worker ${worker}: the flow run knows secret "${secret}" from its --secrets file (or run({ secrets })), ` +
            `and that worker has no value for it, so it could not refuse an output or mask a log line that carries it. ` +
            (waited ? `${waited} ` : "") +
            `Set the environment variable ${secret} for that worker, or put ${secret}=... in the file it is started with (cairn worker --secrets FILE), and restart it.`,
    );
  }
}

/**
 * A task read an environment variable through `ctx.env()` that it does not declare with
 * `.env()`: only declared variables enter its cache key, so a result computed with its value
 * would be reused under another.
 */
export class UndeclaredEnvError extends CairnError {
  static override readonly code: string = "CAIRN_UNDECLARED_ENV";
  override name = "UndeclaredEnvError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly variable: string,
    readonly nodeId: string,
    /** The variables the task declares, sorted. */
    readonly declared: readonly string[],
  ) {
    super(
      `Task "${nodeId}" read environment variable ${JSON.stringify(variable)} with ctx.env(), but it does not declare it ` +
        `(${declared.length ? `it declares ${declared.join(", ")}` : "it declares none"}): only declared variables enter the task's cache key, ` +
        `so its result would be reused whatever the value. Declare it on the task: .env(${JSON.stringify(variable)}).`,
    );
  }
}

/** A task tried to output, log or tag the value of a secret (compared by value, in keys and values alike). */
export class SecretLeakError extends CairnError {
  static override readonly code: string = "CAIRN_SECRET_LEAK";
  override name = "SecretLeakError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly nodeId: string,
    readonly secret: string,
    readonly where: string,
    /** How to do without it there; by default, to output only what the secret produced. */
    fix = "use the secret inside the task and output only what it produced.",
  ) {
    super(
      `Task "${nodeId}" put the value of secret "${secret}" in ${where}. Secrets are never written to outputs, params, ` +
        `tags, metric names, artifact names or the cache, whatever their characters; ${fix}`,
    );
  }
}

/** A flow param carries the value of a secret: it would be recorded with the run, in the tracker and the cache. */
export class SecretParamError extends ParamError {
  static override readonly code: string = "CAIRN_SECRET_PARAM";
  override name = "SecretParamError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    flowName: string,
    param: string,
    readonly secret: string,
  ) {
    super(
      `Flow "${flowName}" got param "${param}" carrying the value of secret "${secret}". Params are recorded with the run ` +
        `(tracker, cache, outputs), so a secret is never accepted as one; read it in the task with ctx.secret("${secret}") instead.`,
      flowName,
      param,
    );
  }
}

/**
 * A name that was to become a path (an artifact name from a task or a script, an artifact
 * path from a cache entry or an MLflow listing) is not a normalised relative path, so it
 * could reach outside the folder it belongs in. Raised by `safeRelativePath`. Also raised, with
 * `refused` `"entry"`, for a function task's artifact whose name is fine but whose entry on disk
 * cannot be recorded (a link out, a dangling link, a FIFO): its message then leaves out the rule
 * for names, which that artifact keeps.
 */
export class UnsafePathError extends CairnError {
  static override readonly code: string = "CAIRN_UNSAFE_PATH";
  override name = "UnsafePathError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    /** The name as it arrived (`name` is the error class's, as on every Error). */
    readonly artifactName: unknown,
    /** What is wrong with it, e.g. `climbs out with ".."`. */
    readonly reason: string,
    /** Where it came from, e.g. `ctx.artifacts.write()`, `script output "model"`, `the cache entry of key ...`. */
    readonly source: string,
    /** The task (its node id in the flow), when the name belongs to one. */
    readonly taskName?: string,
    /** What became of the cache entries that hold it (a name refused when a hit's artifact is downloaded), and what to do: said last. */
    readonly outcome?: string,
    /**
     * What is refused: the name itself (the message then says the rule for names), or the entry on
     * disk that a valid name points at, by its kind or its target (`reason` says what to do).
     * @default "name"
     */
    readonly refused: "name" | "entry" = "name",
  ) {
    const rule =
      refused === "name"
        ? ` An artifact name must be a relative path inside the run's artifacts folder, with "/" between folders and no "..", "." or empty parts, like "data.csv" or "reports/summary.md".`
        : "";
    super(
      `${taskName !== undefined ? `Task "${taskName}": ` : ""}the artifact ${refused === "name" ? "name " : ""}${typeof artifactName === "string" ? JSON.stringify(artifactName) : describeValue(artifactName)} ` +
        `from ${source} ${reason}.${rule}${outcome ? ` ${outcome}` : ""}`,
    );
  }
}

// ---------------------------------------------------------------- tracking

/** Base class of tracker failures. */
export class TrackingError extends CairnError {
  static override readonly code: string = "CAIRN_TRACKING";
  override name = "TrackingError";
}

/**
 * A tracker that a registered factory opens (`registerTrackerScheme`) failed with an error that is
 * not Cairn's own (a plain `Error: service said 500`): its factory threw (`call` is `"factory"`),
 * or one of its methods did (`"logBatch"`, with the run). The message names the tracking URI (its
 * password hidden), the scheme, where the factory was registered, the call and the run; `cause`
 * is what the tracker threw.
 */
export class TrackerCallError extends TrackingError {
  static override readonly code: string = "CAIRN_TRACKER_CALL";
  override name = "TrackerCallError";
  constructor(
    /** The tracking URI, its password hidden. */
    readonly uri: string,
    /** The URI's scheme, as registered (`badjson`). */
    readonly scheme: string,
    /** `"factory"` when the tracker could not be opened, else the Tracker method that failed. */
    readonly call: string,
    /** What the tracker threw, described (`Error: service said 500`), the URI's password hidden. */
    detail: string,
    options: {
      cause: unknown;
      /** Where `registerTrackerScheme` was called for the scheme (`/abs/register.ts:3:1`), when known. */
      registeredAt?: string | undefined;
      /** What the tracker is when it is Cairn's own (`Cairn's MLflow tracker (@cairn/mlflow)`): its failure is Cairn's to fix. */
      builtIn?: string | undefined;
      /** The run the call was about, when it names one. */
      runId?: string | undefined;
    },
  ) {
    const factory = `the factory registered for "${scheme}://" URIs${options.registeredAt ? ` by registerTrackerScheme() at ${options.registeredAt}` : ""}`;
    const otherUri = `or set MLFLOW_TRACKING_URI to another tracker (unset, runs go to the embedded store in .cairn)`;
    super(
      call === "factory"
        ? `Cannot open the tracker for the tracking URI ${uri}: ${factory} threw ${detail}. Fix that factory, or what it needs (the URI, the service it opens, its settings), ${otherUri}.`
        : `The tracker for the tracking URI ${uri} failed: ${call}()${options.runId ? ` for run ${options.runId}` : ""} failed with ${detail}. ` +
            (options.builtIn
              ? `That tracker is ${options.builtIn}, which should reject only with a TrackingError that says what to do: this is a bug in Cairn; report it to Cairn's maintainers with this message, and meanwhile ${otherUri}.`
              : `That tracker comes from ${factory}: fix it or the service it records to (its calls should reject with a TrackingError that says what to do), ${otherUri}.`),
      { cause: options.cause },
    );
    this.runId = options.runId;
  }
  /** The run the failed call was about, when it names one. */
  readonly runId: string | undefined;
}

/**
 * A metric that no tracker keeps: a key that is not a non-empty string, a value that is not a
 * number (NaN and ±Infinity are numbers), or a step that is not an integer (negative ones are,
 * as in MLflow). Thrown where the metric is logged (`ctx.log.metric`), so the task fails there
 * and not the closing of its run; trackers check it again with the same words.
 */
export class MetricError extends TrackingError {
  static override readonly code: string = "CAIRN_METRIC";
  override name = "MetricError";
  constructor(
    readonly key: unknown,
    /** Which of the metric's parts is wrong. */
    readonly part: "key" | "value" | "step",
    readonly got: unknown,
  ) {
    super(
      part === "key"
        ? `A metric's key must be a non-empty string, got ${describeValue(got)}. Name the metric: ctx.log.metric("loss", 0.3).`
        : part === "value"
          ? `Metric "${String(key)}" has value ${describeValue(got)}; expected a number (NaN and Infinity are kept). Convert it first (Number(x)), or log it as a tag.`
          : `Metric "${String(key)}" has step ${describeValue(got)}; expected an integer (negative ones too, as in MLflow). Round it (Math.round(x)), or leave the step out for 0.`,
    );
  }
}

/**
 * A tracking setting that cannot be used (an MLflow variable such as MLFLOW_HTTP_REQUEST_TIMEOUT,
 * the tracking URI, a client option): a mistake in the configuration, refused before anything
 * runs, which retrying does not fix. `cairn` exits 2 for it, not 1 as for a server's failure.
 */
export class TrackingConfigError extends TrackingError {
  static override readonly code: string = "CAIRN_TRACKING_CONFIG";
  override name = "TrackingConfigError";
}

/**
 * The schemes of MLflow's own stores (`mlflow server --backend-store-uri`): a tracking URI with one
 * is meant for MLflow, which Cairn reaches over HTTP; any other scheme is a tracker's of a plug-in.
 */
const MLFLOW_STORE_SCHEMES = new Set(["file", "sqlite", "postgresql", "postgres", "mysql", "mssql", "databricks", "databricks-uc", "uc"]);

/** The tracking URI names something Cairn cannot talk to (a `sqlite:` or `file:` URI, a scheme no tracker is registered for). */
export class UnsupportedTrackingUriError extends TrackingError {
  static override readonly code: string = "CAIRN_UNSUPPORTED_TRACKING_URI";
  override name = "UnsupportedTrackingUriError";
  /**
   * The URI's scheme (before `://`, lower case) when it is none of MLflow's own stores: a
   * tracker of a plug-in whose module (the one that calls `registerTrackerScheme`) was not loaded.
   */
  readonly unknownScheme: string | undefined;
  constructor(
    readonly uri: string,
    /** The schemes plug-ins registered besides http(s) (`registerTrackerScheme`). */
    readonly registered: readonly string[] = [],
  ) {
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(uri)?.[1]?.toLowerCase();
    const unknownScheme = scheme !== undefined && !MLFLOW_STORE_SCHEMES.has(scheme) ? scheme : undefined;
    const plugins = registered.length ? ` (and, through plug-ins, ${registered.map((s) => `${s}://`).join(", ")})` : "";
    super(
      unknownScheme === undefined
        ? `MLFLOW_TRACKING_URI is "${uri}", but Cairn talks to MLflow only over HTTP${plugins}.${trackingUriFix(uri)}`
        : `MLFLOW_TRACKING_URI is "${uri}", but no tracker is registered for the scheme "${unknownScheme}://" in this process ` +
            `(Cairn talks to MLflow over http:// and https://${registered.length ? `; plug-ins registered ${registered.map((s) => `${s}://`).join(", ")}` : ""}). ` +
            `A tracker of your own is registered with registerTrackerScheme(["${unknownScheme}"], factory) of cairn-dag, ` +
            `in a module loaded before Cairn opens the tracker: import that module first (from the flow file or the app), or set MLFLOW_TRACKING_URI to an MLflow server (http://...).`,
    );
    this.unknownScheme = unknownScheme;
  }
}

/**
 * How to fix a tracking URI Cairn cannot use: drop the quotes a .env file gave it, add the
 * `http://` a bare `host:port` lacks (MLflow's own client takes neither), else start a server.
 */
function trackingUriFix(uri: string): string {
  const quotes = quotesHint("MLFLOW_TRACKING_URI", uri);
  if (quotes) return quotes;
  if (/^[\w.-]+:\d+(?:\/\S*)?$/.test(uri) || /^\[[\d:a-f]+\]:\d+/i.test(uri)) {
    return ` It reads as a host and port without a scheme: write MLFLOW_TRACKING_URI=http://${uri} (or https://).`;
  }
  return (
    ` Start a server with \`mlflow server --backend-store-uri sqlite:///mlflow.db --port 5000\` and set ` +
    `MLFLOW_TRACKING_URI=http://127.0.0.1:5000, or unset it to use the embedded store in .cairn/.`
  );
}

/** The tracking server cannot be reached or refuses the credentials. */
export class TrackerUnreachableError extends TrackingError {
  static override readonly code: string = "CAIRN_TRACKER_UNREACHABLE";
  override name = "TrackerUnreachableError";
  constructor(
    readonly uri: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      // A detail that ends a sentence itself ("is this an MLflow tracking server?") gets no second stop.
      `Cannot reach the MLflow tracking server at ${uri}: ${/[.?!]$/.test(detail) ? detail : `${detail}.`} ` +
        `Check that \`mlflow server\` is running there and that MLFLOW_TRACKING_URI (and any credentials) are right.`,
      options,
    );
  }
}

/** MLflow answered a request with an error body ({error_code, message}). */
export class MlflowApiError extends TrackingError {
  static override readonly code: string = "CAIRN_MLFLOW_API";
  override name = "MlflowApiError";
  constructor(
    readonly endpoint: string,
    readonly status: number,
    readonly errorCode: string,
    readonly serverMessage: string,
    readonly runId?: string,
    options?: {
      cause?: unknown;
      /** A request that failed its every retry: the server it was sent to (credentials removed), how many times and for how long, so that a lasting fault (a full disk) reads as one. */
      tries?: { uri: string; count: number; ms: number };
    },
  ) {
    const tries = options?.tries;
    super(
      `MLflow ${endpoint}${runId ? ` (run ${runId})` : ""} failed with HTTP ${status} ${errorCode}` +
        (tries ? ` at ${tries.uri}, ${tries.count} tries over ${Math.round(tries.ms / 1000)} s` : "") +
        `: ${serverMessage}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.tries = tries;
  }
  /** Set when the request was tried more than once: where, how many times, for how long. */
  readonly tries: { uri: string; count: number; ms: number } | undefined;
}

/**
 * The MLflow experiment a flow would record to keeps its artifacts where Cairn cannot write them:
 * a location the server does not proxy (a folder, `s3://…`: what `mlflow server
 * --default-artifact-root` or `artifact_location=` gives), which MLflow's clients write to
 * directly. Cairn writes a run's artifacts only through the server's artifact proxy
 * (`mlflow-artifacts:`). Refused when the experiment is opened, before any run is created.
 */
export class ArtifactLocationError extends TrackingError {
  static override readonly code: string = "CAIRN_ARTIFACT_LOCATION";
  override name = "ArtifactLocationError";
  constructor(
    readonly experiment: string,
    readonly experimentId: string,
    readonly artifactLocation: string,
    /**
     * Set when Cairn had just created the experiment (the server gives new experiments such a
     * location): `removed`, it was renamed to `asideName` and deleted, so the name is free again;
     * else `failed` says why it could not be.
     */
    readonly createdNow?: { removed: true; asideName: string } | { removed: false; failed: string },
  ) {
    const serverFix =
      "Start the server with `--artifacts-destination <folder or s3://...>` instead of `--default-artifact-root` (or with `--default-artifact-root mlflow-artifacts:/`)";
    const why =
      "it writes artifacts only through the MLflow server's artifact proxy (an mlflow-artifacts: location), and the server gives this " +
      "experiment a location its clients write to directly.";
    super(
      createdNow === undefined
        ? `MLflow experiment "${experiment}" (id ${experimentId}) keeps its artifacts at "${artifactLocation}", which Cairn cannot write: ${why} ` +
            `${serverFix}, then record to a new experiment (\`--experiment NAME\` or MLFLOW_EXPERIMENT_NAME): an experiment keeps the artifact location ` +
            `it was created with. To keep this name, free it first: rename the experiment (\`mlflow experiments rename --experiment-id ${experimentId} --new-name OTHER\`), ` +
            `or delete it and remove it for good (\`mlflow gc --backend-store-uri <the server's store> --experiment-ids ${experimentId}\`; a deleted experiment keeps its name until then).`
        : `MLflow experiment "${experiment}" (id ${experimentId}), which Cairn just created, was given the artifact location "${artifactLocation}", which Cairn cannot write: ${why} ` +
            (createdNow.removed
              ? `Cairn renamed it to "${createdNow.asideName}" and deleted it, so the name "${experiment}" is free again. ${serverFix}, then run again.`
              : `Cairn could not remove it (${createdNow.failed}), and it keeps that location: rename it (\`mlflow experiments rename --experiment-id ${experimentId} --new-name OTHER\`) ` +
                `to free the name. ${serverFix}, then run again.`),
    );
  }
}

/**
 * An artifact downloaded from the tracker (a cache hit's, recorded on another machine) is not the
 * artifact its record names: its sha256 differs from the digest the run recorded (the server's
 * copy was changed or damaged). The copy is removed; a task never reads it. Not retried: the
 * server would hand the same bytes again.
 */
export class ArtifactMismatchError extends CairnError {
  static override readonly code: string = "CAIRN_ARTIFACT_MISMATCH";
  override name = "ArtifactMismatchError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    /** The artifact's path within its run's artifacts. */
    readonly artifactPath: string,
    readonly runId: string,
    /** Where it was downloaded from (the tracking URI, credentials removed). */
    readonly trackerUri: string,
    /** The sha256 its record holds. */
    readonly expected: string,
    /** The sha256 of what was downloaded. */
    readonly actual: string,
    /** What became of the cache entries that hold it, and what to do: said after the mismatch. */
    readonly outcome: string,
    /** The task (its node id) whose input it is, when one is. */
    readonly taskName?: string,
    /**
     * True when the difference may be only empty folders: a folder recorded by an older Cairn,
     * whose digest counted the empty folders in it without naming them (MLflow's artifact store
     * keeps none), downloaded with every byte of its files. The server's copy may be whole.
     */
    readonly mayBeEmptyFolders = false,
  ) {
    super(
      `${taskName !== undefined ? `Task "${taskName}": ` : ""}artifact ${artifactPath} of run ${runId}, downloaded from ${trackerUri}, is not the artifact its record names: ` +
        `its sha256 is ${actual.slice(0, 12)}..., the run recorded ${expected.slice(0, 12)}...` +
        (mayBeEmptyFolders
          ? `. It is a folder recorded by an older Cairn, whose digest counted the empty folders in it without naming them, and MLflow's artifact store keeps no empty folder: ` +
            `every byte of its files arrived, so if the folder held an empty folder, that alone is the difference and the server's copy is whole; else the server's copy was changed or damaged since. ` +
            `A run of the task now records its empty folders with it, and its downloads are whole. `
          : ` (the server's copy was changed or damaged since). `) +
        `The download was removed and nothing read it.${outcome ? ` ${outcome}` : ""}`,
    );
  }
}

/** Describes a value for an error message: `0 (number)`, `"abc" (string)`, `a function`. */
export function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (typeof value === "function") return "a function";
  if (typeof value === "string") return `${JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value)} (string)`;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return `\`${String(value)}\` (${typeof value})`;
  if (typeof value === "symbol") return `a symbol (${String(value)})`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  const ctor = (value as object).constructor?.name;
  return ctor && ctor !== "Object" ? `a ${ctor} instance` : "an object";
}

/** A code file a task declared (`.codeFiles()`) cannot be read when its cache key is made. */
export class CodeFileError extends CairnError {
  static override readonly code: string = "CAIRN_CODE_FILE";
  override name = "CodeFileError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly task: string,
    readonly path: string,
    detail: string,
  ) {
    super(
      `Task "${task}": the code file "${path}" it declares with .codeFiles() cannot be read (${detail}). ` +
        `Restore it, or remove it from .codeFiles() if the task no longer depends on it.`,
    );
  }
}

/** The file a script or notebook task names does not exist or cannot be read. */
export class TaskFileError extends CairnError {
  static override readonly code: string = "CAIRN_TASK_FILE";
  override name = "TaskFileError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly taskName: string,
    readonly file: string,
    readonly tried: readonly string[],
    detail = "does not exist",
  ) {
    super(
      `Task "${taskName}": the file "${file}" ${detail} (looked at ${tried.map((t) => `"${t}"`).join(", ")}). ` +
        `Relative paths resolve against the folder of the module that declares the task, then the working directory; ` +
        `pass an absolute path or new URL("./file", import.meta.url) to be explicit.`,
    );
  }
}

// ---------------------------------------------------------------- maps, sweeps and conditions

/** A map's `over` did not resolve to an array when the map was about to expand. */
export class MapOverError extends CairnError {
  static override readonly code: string = "CAIRN_MAP_OVER";
  override name = "MapOverError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly nodeId: string,
    /** What `over` was wired to: `listFiles.paths`, `params.items`. */
    readonly over: string,
    readonly got: unknown,
  ) {
    super(
      `Map "${nodeId}" expected its input \`over\` (${over}) to be an array, got ${describeValue(got)}. ` +
        `Wire \`over\` to an output or param that is a list (e.g. { paths: string[] }.paths), or wrap a single value in [ ].`,
    );
  }
}

/** A map has fewer items than its `minSuccess` count asks to succeed. */
export class MinSuccessError extends CairnError {
  static override readonly code: string = "CAIRN_MIN_SUCCESS";
  override name = "MinSuccessError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly nodeId: string,
    readonly minSuccess: number,
    readonly items: number,
  ) {
    super(
      `Map "${nodeId}" asks for minSuccess ${minSuccess} items, but its list has ${items}. ` +
        `Lower minSuccess, or give it as a fraction of the list (e.g. 0.8).`,
    );
  }
}

/** Too many of a map's items failed (more than `minSuccess` allows; any, without it). */
export class MapItemsFailedError extends CairnError {
  static override readonly code: string = "CAIRN_MAP_ITEMS_FAILED";
  override name = "MapItemsFailedError";
  constructor(
    readonly nodeId: string,
    /** The failed items' node ids with their error messages. */
    readonly failed: ReadonlyArray<{ readonly item: string; readonly message: string }>,
    readonly required: number,
    /** The items the map was judged on: its list, or a sweep's trials up to `stoppedAt`. */
    readonly items: number,
    /** A sweep cut by stopWhen: the trial that cut it; `required` is of the trials up to it. */
    readonly stoppedAt?: string,
    /** The node is a sweep (its items are trials) or a map: the message names it so. */
    readonly kind: "map" | "sweep" = stoppedAt === undefined ? "map" : "sweep",
  ) {
    const shown = failed.slice(0, 5).map((f) => `"${f.item}": ${f.message}`);
    if (failed.length > 5) shown.push(`and ${failed.length - 5} more`);
    const sweep = kind === "sweep";
    const counted = stoppedAt === undefined ? `${items} ${sweep ? "trials" : "items"}` : `the ${items} trials up to "${stoppedAt}" (the first to meet stopWhen; those after it do not count)`;
    super(
      `${sweep ? "Sweep" : "Map"} "${nodeId}": ${failed.length} of ${counted} failed, and ${required} had to succeed (${shown.join("; ")}). ` +
        `Fix the failing ${sweep ? "trials" : "items"}, or let the ${sweep ? "sweep" : "map"} tolerate failures with minSuccess (a count or a fraction).`,
    );
  }
}

/**
 * A condition (`{ if: ref }`) resolved to something other than a boolean, or the `when()` test
 * of one threw (`threw`; what it threw is the `cause`).
 */
export class ConditionError extends CairnError {
  static override readonly code: string = "CAIRN_CONDITION";
  override name = "ConditionError";
  override get retryable(): boolean {
    return false;
  }
  /** Whether the condition's `when()` test threw (its `cause`), rather than returning something other than a boolean (`got`). */
  readonly threw: boolean;
  /**
   * @param condition the condition as said: the ref it reads (`stats.rows`), for a `when()` one
   *   followed by ` tested by when()` unless it threw.
   * @param options `cause`: what the `when()` test threw (then `got` is not used); `mask` hides the
   *   run's secrets in what the message shows of a thrown value that is no Error.
   */
  constructor(
    readonly nodeId: string,
    readonly condition: string,
    readonly got: unknown,
    options?: { cause: unknown; mask?: (text: string) => string },
  ) {
    super(
      options
        ? `Task "${nodeId}" did not run: the when() test of its condition on ${condition} threw ${thrownText(options.cause, options.mask)}. ` +
            `Fix the test so that it returns true or false for every value ${condition} may have ` +
            `(true runs "${nodeId}", false skips it and its dependants), e.g. read fields that may be absent with \`?.\`.`
        : `Task "${nodeId}" has the condition \`if: ${condition}\`, which must be a boolean, got ${describeValue(got)}. ` +
            `Wire \`if\` to a boolean output (e.g. { passed: boolean }.passed), or compute one in a small task.`,
      options ? { cause: options.cause } : undefined,
    );
    this.threw = options !== undefined;
  }
}

/** What a user's function threw, for a message: `TypeError: <its message>`, or a thrown value that is no Error as {@link describeThrown} says it. */
function thrownText(thrown: unknown, mask: (text: string) => string = (text) => text): string {
  if (!isError(thrown)) return describeThrown(thrown, mask);
  const { name, message } = toErrorInfo(thrown);
  return message ? `${name}: ${message}` : name;
}

/** A sweep's selector names an output that a trial did not return as a finite number. */
export class SelectorError extends CairnError {
  static override readonly code: string = "CAIRN_SELECTOR";
  override name = "SelectorError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly nodeId: string,
    readonly trial: string,
    readonly metric: string,
    readonly got: unknown,
    readonly outputs: readonly string[],
    /** Those of `outputs` that were finite numbers: what the selector could name instead. */
    numeric: readonly string[] = [],
  ) {
    super(
      `Sweep "${nodeId}" selects on output "${metric}", but trial "${trial}" returned ${got === undefined ? "no such output" : describeValue(got)}` +
        ` (its outputs: ${outputs.length ? outputs.join(", ") : "none"}). ` +
        (numeric.length
          ? `Select on a numeric output of the task, e.g. max("${numeric[0]}"), or make the task return "${metric}" as a number.`
          : `Make the task return "${metric}" as a number (it returned no numeric output to select on).`),
    );
  }
}

// ---------------------------------------------------------------- dispatch

/**
 * A dispatched task (a queue's job) names a cache key other than the one its own inputs, code and
 * environment make where it is to run: the job was not made for these inputs by this Cairn
 * (another program or version made it, or it was altered on its way, in the queue's Redis). Its
 * result stored under the job's key would be a wrong hit for the inputs that key stands for, so
 * the task is not run and nothing is stored.
 */
export class CacheKeyMismatchError extends CairnError {
  static override readonly code: string = "CAIRN_CACHE_KEY_MISMATCH";
  override name = "CacheKeyMismatchError";
  override get retryable(): boolean {
    return false;
  }
  constructor(
    readonly nodeId: string,
    /** The key made here from the task's inputs, code and environment. */
    readonly expected: string,
    /** The key the dispatched task names. */
    readonly got: string,
    /** The ingredients that differ (`input "n"`, `code`), as far as the task's record of them tells. */
    readonly differs: readonly string[] = [],
    /** Where it was refused (`by worker vm-1-4242-ab12cd34 (on vm-1)`), and what else to say. */
    where = "",
  ) {
    super(
      `Task "${nodeId}" was not run${where ? ` ${where}` : ""}: expected cache key ${expected} for the inputs its job carries (made here from them, the task's code and environment), ` +
        `the job says ${got}${differs.length ? ` (its record differs in ${differs.join(", ")})` : ""}. ` +
        `The job was not made for these inputs by this Cairn: another program or Cairn version made it, or it was altered in the queue's Redis ` +
        `(or an input names a file, as an MLflow project's path parameter does, whose content here differs from the coordinator's: such a file must be the same on every machine). ` +
        `Its result stored under the job's key would be a wrong cache hit for other inputs, so nothing was run or stored. ` +
        `Run the flow again with the workers' Cairn (cairn run --queue); if it happens again, find out who else writes to the queue's Redis, and give it a password (see "Running on several machines").`,
    );
  }
}
