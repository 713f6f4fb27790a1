/**
 * The secrets of one flow run, and the one place that recognises their values.
 *
 * A secret is known from the start when it comes from a secrets file (`--secrets`,
 * `run({ secrets })`), and from the moment a task asks for it when it comes from the
 * environment (in this process; or in another, a queue's worker or coordinator, that told this
 * one its name: see `learnAsked`, each process knowing its own value). Known values are recognised in two ways, both here and nowhere else:
 *
 * - `find` / `assertClean` look at values, not at serialised text: every string, every
 *   object key and every number of a JSON value is compared with each secret, so a
 *   secret with a quote, a backslash, a newline or non-ASCII characters is found as
 *   surely as a plain one (a number only when it is the secret, not when its digits merely
 *   contain one). What they guard is refused (outputs, params, tags, metric keys, flow
 *   params): nothing is half-written.
 * - `mask` replaces every occurrence of every known secret in a text with `***`, in
 *   its raw form, quoted as Python and shells print a string (repr, shlex, printf %q) and
 *   in the escaped forms of each (JSON as JavaScript writes it, Python's `ensure_ascii`
 *   JSON with `\uXXXX`, HTML), so a secret inside serialised or printed text is masked too. Overlapping secrets are masked over their union. The engine calls it where
 *   strings leave it: events (hence the CLI, `--json`, `run.on`), task errors in
 *   results and in the tracker, process logs.
 *
 * A multi-line secret is also recognised line by line (lines of `MIN_MASKED_LENGTH` or more
 * characters), because processes are read, logged and masked one line at a time.
 *
 * A value shorter than `MIN_MASKED_LENGTH` characters cannot be masked inside text
 * without masking ordinary words (a 1-character secret would mask every "a"): such a
 * secret is refused only where a whole value equals it, and a warning says so once.
 */
import { privateDigestAsync } from "@cairn/cache";
import { SecretLeakError, SecretNotFoundError, SecretParamError } from "../errors.ts";
import { ownValue } from "../internal.ts";
import { type ErrorInfo, isError, type RunEvent, withErrorSource } from "./events.ts";

/** Secrets with fewer characters (code points) than this are matched as whole values only, never inside text. */
export const MIN_MASKED_LENGTH = 4;

/** What replaces a secret in text. */
export const MASK = "***";

/** The secrets known to one flow run: hands them out, refuses values that carry one, masks text. */
export class SecretRegistry {
  /** value -> name, every secret handed out or read from the file. */
  private readonly known = new Map<string, string>();
  /** Forms searched inside text (raw, escaped, lines) -> name; only secrets of MIN_MASKED_LENGTH or more. */
  private readonly forms = new Map<string, string>();
  /** The keys and values of `forms`, longest first, as arrays: the checks run per string of every output. */
  private formList: string[] = [];
  private formNames: string[] = [];
  /**
   * Per form, the longest run of ASCII letters and digits of the text it was made from (3 or more),
   * which every form of that text holds as it is (quoting and escaping change only the other
   * characters): a text without it holds none of those forms, so one search stands for them all.
   */
  private anchors: string[] = [];
  /** Per form, the index of its anchor in `anchors`, or -1 for none. */
  private formAnchors: number[] = [];
  /** Some form has no anchor: it is searched for in every text. */
  private anchorless = false;
  private readonly anchorOf = new Map<string, string | undefined>();
  /** Secrets shorter than MIN_MASKED_LENGTH: value -> name; matched as whole values only. */
  private readonly short = new Map<string, string>();
  private readonly warned = new Set<string>();
  /** Some known secret is made only of characters a number's text has (digits, `.`, `e`, `+`, `-`). */
  private numeric = false;
  /** The texts of secrets (or of their lines) that are a number's: a number whose text is one of them is that secret. */
  private readonly numbers = new Map<string, string>();
  /** Secrets first read from the environment that a flow param turned out to carry: every ask is refused. */
  private readonly carried = new Map<string, SecretParamError>();
  /** The names of the secrets tasks of the run asked for (here, or on another process that said so: see learnAsked). */
  private readonly asked = new Set<string>();

  constructor(
    private readonly fromFile: Readonly<Record<string, string>> = {},
    private readonly env: NodeJS.ProcessEnv = process.env,
    /** Told once per short secret that it cannot be masked inside text, with the task that asked. */
    private readonly warn: (message: string, nodeId: string) => void = () => {},
  ) {
    for (const [name, value] of Object.entries(fromFile)) this.remember(name, value);
  }

  /** Secret `name` from the file, else the environment; a name such as `toString` or `__proto__` is unset unless given. */
  private valueOf(name: string): string | undefined {
    return ownValue(this.fromFile, name) ?? ownValue(this.env, name);
  }

  /** The names of the secrets given up front (`--secrets FILE`, `run({ secrets })`), never their values: what a worker must know before it runs a task of this run. */
  get givenNames(): string[] {
    return Object.keys(this.fromFile);
  }

  /**
   * The names (never the values) of the secrets tasks of the run asked for with `ctx.secret()`,
   * here or in another process that told this one (see {@link learnAsked}): what a queue's
   * coordinator and workers tell one another, so that each knows its own value of them too.
   */
  get askedNames(): string[] {
    return [...this.asked];
  }

  /** True when no secret is known yet: every check and mask is then free. */
  get empty(): boolean {
    return this.known.size === 0 && this.forms.size === 0;
  }

  /**
   * The secret's value; throws SecretNotFoundError naming the task when unset or empty.
   * A secret first learned here (from the environment) is checked against the flow's
   * params: `params`, when given, must not carry it.
   */
  get(name: string, nodeId: string, params?: { flowName: string; values: Record<string, unknown> }): string {
    const value = this.valueOf(name);
    if (value === undefined || value === "") throw new SecretNotFoundError(name, nodeId);
    this.asked.add(name);
    if (!this.known.has(value)) {
      this.remember(name, value);
      // Learned now (from the environment): params that carry it were accepted before it was known.
      if (params) {
        try {
          this.assertParamsClean(params.flowName, params.values);
        } catch (error) {
          this.carried.set(value, error as SecretParamError);
        }
      }
    }
    const carried = this.carried.get(value);
    if (carried) throw carried;
    if (this.short.has(value) && !this.warned.has(name)) {
      this.warned.add(name);
      this.warn(
        `secret "${name}" is shorter than ${MIN_MASKED_LENGTH} characters: Cairn refuses it where a whole value equals it, ` +
          `but cannot mask it inside text (logs, errors). Use a longer secret.`,
        nodeId,
      );
    }
    return value;
  }

  /**
   * Knows secret `name` from now on, from the file or the environment, without a task asking for
   * it: a worker learns so the secrets its flow run's coordinator knew from the start. False when
   * it is unset or empty here.
   */
  learn(name: string): boolean {
    const value = this.valueOf(name);
    if (value === undefined || value === "") return false;
    this.remember(name, value);
    return true;
  }

  /**
   * Knows secret `name`, which a task of the run asked for in another process (a worker, or
   * through the coordinator a task on another worker), by this process's own value when it has
   * one, and passes the name on (see {@link askedNames}). False when it has no value here: the
   * name is kept all the same, for the processes that have one.
   */
  learnAsked(name: string): boolean {
    this.asked.add(name);
    return this.learn(name);
  }

  /**
   * A slow digest (scrypt, see privateDigest) of this process's value of secret `name`, salted
   * with `salt` (a flow run's id) and the name, or undefined when it has none: what a coordinator
   * and a worker compare to find that they hold different values of a secret without sending it.
   */
  async digest(name: string, salt: string): Promise<string | undefined> {
    const value = this.valueOf(name);
    if (value === undefined || value === "") return undefined;
    return privateDigestAsync(value, `secret\0${salt}\0${name}`);
  }

  /** The name of a known secret that `value` (any JSON data: strings, keys, numbers, nested) carries, or undefined. */
  find(value: unknown): string | undefined {
    if (this.known.size === 0) return undefined;
    return this.visit(value, 0);
  }

  /** Throws SecretLeakError naming the task, the secret and `where` (and `fix`, how to do without it there) when `value` carries a known secret. */
  assertClean(value: unknown, nodeId: string, where: string, fix?: string): void {
    if (this.known.size === 0) return;
    const name = this.visit(value, 0);
    if (name !== undefined) throw new SecretLeakError(nodeId, name, where, fix);
  }

  /** Throws SecretParamError when a flow param carries a known secret: it would be recorded with the run. */
  assertParamsClean(flowName: string, params: Record<string, unknown>): void {
    if (this.known.size === 0) return;
    for (const key in params) {
      const name = this.visit(key, 0) ?? this.visit(params[key], 0);
      if (name !== undefined) throw new SecretParamError(flowName, this.mask(key), name);
    }
  }

  /** `text` with every known secret, in any of its forms (raw, JSON, HTML, a line of it), replaced by `***`. */
  mask(text: string): string {
    if (this.forms.size === 0 || text.length === 0) return text;
    const spans = this.occurrences(text);
    if (!spans) return text;
    // Overlapping or adjacent matches (two secrets sharing characters) are masked as one span.
    let out = "";
    let at = 0;
    let end = -1;
    for (const k of byStart(spans)) {
      const start = spans[2 * k]!;
      const stop = spans[2 * k + 1]!;
      if (start > end) {
        out += text.slice(at, start) + MASK;
        end = stop;
      } else if (stop > end) end = stop;
      at = end;
    }
    return out + text.slice(at);
  }

  /**
   * Where to cut `text` near `at` so that masking its two pieces apart masks every known secret
   * it holds, none split (text written in pieces, as a process's long line is): `at` when no
   * secret spans it; else the start of the secrets across it (with those that overlap them); when
   * those reach back to the text's start, their end instead, so the first piece grows by them and
   * never past `text`. Secrets that merely touch (one ends where the next starts) may be cut
   * between. The cost is one search of `text`, as {@link mask}'s; none when no secret is known.
   */
  safeCut(text: string, at: number): number {
    if (this.forms.size === 0 || at <= 0 || at >= text.length) return at;
    const spans = this.occurrences(text);
    if (!spans) return at;
    // The secrets across `at`, found as chains of overlapping occurrences in the order they start.
    let first = -1;
    let last = -1;
    for (const k of byStart(spans)) {
      const start = spans[2 * k]!;
      const stop = spans[2 * k + 1]!;
      if (start >= last) {
        if (first < at && at < last) break;
        if (start >= at) return at;
        first = start;
        last = stop;
      } else if (stop > last) last = stop;
    }
    if (!(first < at && at < last)) return at;
    return first > 0 ? first : last;
  }

  /** Where the forms of known secrets occur in `text`, as start and end pairs, in no order; undefined for none. */
  private occurrences(text: string): number[] | undefined {
    let spans: number[] | undefined;
    const held = this.anchorsIn(text);
    if (held === undefined) return undefined;
    const forms = this.formList;
    for (let f = 0; f < forms.length; f++) {
      const form = forms[f]!;
      const a = this.formAnchors[f]!;
      if (a >= 0 && !held[a]) continue;
      for (let i = text.indexOf(form); i !== -1; i = text.indexOf(form, i + 1)) (spans ??= []).push(i, i + form.length);
    }
    return spans;
  }

  /** An error with its name and message masked. */
  maskError(error: ErrorInfo): ErrorInfo {
    if (this.forms.size === 0) return error;
    const message = this.mask(error.message);
    const name = this.mask(error.name);
    const at = error.at === undefined ? undefined : this.mask(error.at);
    return message === error.message && name === error.name && at === error.at ? error : withErrorSource({ ...error, name, message }, at);
  }

  /** Masks the message and stack of a thrown Error in place (it is about to be reported) and returns it. */
  maskThrown(error: unknown): unknown {
    if (this.forms.size === 0 || !isError(error)) return error;
    try {
      error.message = this.mask(error.message);
      if (error.stack) error.stack = this.mask(error.stack);
    } catch {
      // A frozen error, or one whose message is a getter, cannot be changed: it goes on as it is rather than this throwing instead.
    }
    return error;
  }

  /** An event with its message or error masked; the same object when nothing changes. */
  maskEvent(event: RunEvent): RunEvent {
    if (this.forms.size === 0) return event;
    if (event.type === "log") {
      const message = this.mask(event.message);
      return message === event.message ? event : { ...event, message };
    }
    if (event.error) {
      const error = this.maskError(event.error);
      return error === event.error ? event : { ...event, error };
    }
    return event;
  }

  private visit(value: unknown, depth: number): string | undefined {
    if (typeof value === "string") return this.inText(value);
    // A number is a secret when its text is one (a PIN, an account number). Not when its text
    // merely contains one: the digits of a 4-digit PIN turn up inside ordinary metrics
    // (0.1482917 holds 4829), and refusing those would fail flows at random.
    if (typeof value === "number") return this.numeric ? this.numbers.get(String(value)) : undefined;
    if (value === null || typeof value !== "object" || depth > 1000) return undefined;
    if (Array.isArray(value)) {
      for (const item of value) {
        const found = this.visit(item, depth + 1);
        if (found !== undefined) return found;
      }
      return undefined;
    }
    for (const key in value) {
      const found = this.inText(key) ?? this.visit((value as Record<string, unknown>)[key], depth + 1);
      if (found !== undefined) return found;
    }
    return undefined;
  }

  private inText(text: string): string | undefined {
    if (this.short.size) {
      const exact = this.short.get(text);
      if (exact !== undefined) return exact;
    }
    const forms = this.formList;
    const held = this.anchorsIn(text);
    if (held === undefined) return undefined;
    // Longest first: once the text is shorter than a form, only the shorter forms remain to try.
    for (let i = 0; i < forms.length; i++) {
      const a = this.formAnchors[i]!;
      if ((a < 0 || held[a]) && forms[i]!.length <= text.length && text.includes(forms[i]!)) return this.formNames[i];
    }
    return undefined;
  }

  /** Which anchors `text` holds (each searched once); undefined when it holds none and every form has one: no form can be in it. */
  private anchorsIn(text: string): boolean[] | undefined {
    const anchors = this.anchors;
    const held = new Array<boolean>(anchors.length);
    let any = this.anchorless;
    for (let k = 0; k < anchors.length; k++) any = (held[k] = text.includes(anchors[k]!)) || any;
    return any ? held : undefined;
  }

  /**
   * The credentials of the run's tracker, handed to task processes (Tracker.childEnv): masked in
   * text as secrets are, but not refused where a value carries them (a short or common password
   * would fail tasks whose outputs merely contain its text). A user name is neither; a value
   * shorter than MIN_MASKED_LENGTH is not masked either.
   */
  maskCredentials(credentials: Readonly<Record<string, string>>): void {
    for (const [name, value] of Object.entries(credentials)) if (!name.endsWith("_USERNAME") && codePoints(value) >= MIN_MASKED_LENGTH) this.addForms(name, [value]);
  }

  private remember(name: string, value: string): void {
    if (value.length === 0 || this.known.has(value)) return;
    this.known.set(value, name);
    if (codePoints(value) < MIN_MASKED_LENGTH) {
      this.short.set(value, name);
      if (NUMBER_CHARS.test(value)) {
        this.numeric = true;
        this.numbers.set(value, name);
      }
      return;
    }
    // A process's output is read line by line, and a line ends at "\n", "\r\n" or a lone "\r": each
    // line of a multi-line secret (a PEM key), and a secret read with its file's "\r" (a token
    // from a CRLF file), is masked on its own too.
    const lines = /[\r\n]/.test(value) ? value.split(/\r\n|\r|\n/).filter((line) => codePoints(line) >= MIN_MASKED_LENGTH) : [];
    this.addForms(name, [value, ...lines]);
    for (const text of [value, ...lines]) {
      if (!NUMBER_CHARS.test(text)) continue;
      this.numeric = true;
      if (!this.numbers.has(text)) this.numbers.set(text, name);
    }
  }

  /** Masks every text form of `texts` as secret `name`. */
  private addForms(name: string, texts: readonly string[]): void {
    for (const text of texts) {
      const run = (text.match(/[A-Za-z0-9]+/g) ?? []).reduce((a, b) => (b.length > a.length ? b : a), "");
      for (const form of textForms(text)) {
        if (this.forms.has(form)) continue;
        this.forms.set(form, name);
        this.anchorOf.set(form, run.length >= 3 && run !== form ? run : undefined);
      }
    }
    // Longest first: where one secret contains another, the longer one is reported.
    const sorted = [...this.forms].sort((a, b) => b[0].length - a[0].length);
    this.formList = sorted.map(([form]) => form);
    this.formNames = sorted.map(([, n]) => n);
    this.anchors = [...new Set([...this.anchorOf.values()].filter((a): a is string => a !== undefined))];
    const index = new Map(this.anchors.map((a, k) => [a, k]));
    this.formAnchors = sorted.map(([form]) => {
      const anchor = this.anchorOf.get(form);
      return anchor === undefined ? -1 : index.get(anchor)!;
    });
    this.anchorless = this.formAnchors.includes(-1);
  }
}

/**
 * The forms a value takes in text: how a program writes it (itself, or quoted as Python and the
 * shell quote a string: see {@link quotedForms}), each as it is then stored: itself, JSON-escaped,
 * JSON-escaped to ASCII (Python's json.dumps), HTML-escaped as MarkupSafe (nbconvert's outputs),
 * Pygments (its code) and html.escape(quote=False) (a cell's text output) write it, and each HTML
 * form JSON-escaped too (in an .ipynb). A value without characters that these escape has one form.
 */
export function textForms(value: string): string[] {
  const forms = new Set<string>();
  for (const written of [value, ...quotedForms(value)]) {
    const json = JSON.stringify(written).slice(1, -1);
    // eslint-disable-next-line no-control-regex -- every non-ASCII UTF-16 unit, as Python escapes it
    const ascii = json.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
    const html = (quote: string) => written.replace(/[&<>"']/g, (c) => (c === '"' ? quote : c === "'" ? "&#39;" : HTML[c]!));
    // Python's html.escape(quote=False), as nbconvert writes a cell's text output: quotes stay.
    const htmls = [html("&#34;"), html("&quot;"), written.replace(/[&<>]/g, (c) => HTML[c]!)];
    for (const form of [written, json, ascii, ...htmls, ...htmls.map((h) => JSON.stringify(h).slice(1, -1))]) forms.add(form);
  }
  return [...forms];
}

/**
 * The value as a Python or shell program quotes it, without the surrounding quotes (they depend on
 * the value): Python's repr (`print` of a dict or list, `%r`, `{x!r}`, logging's args, a
 * CalledProcessError's command), with `'` escaped (repr does so when the value holds both quote
 * kinds, and a line of a multi-line secret sits in its whole value's repr) and not; ascii(); the
 * repr of its UTF-8 bytes; shlex.quote/shlex.join (`'` as `'"'"'`); `'\''` (Cairn's own shell
 * quoting, bash's `${x@Q}` and `set -x`); and bash's `printf %q` (a backslash before each special
 * character, or `$'…'` when the value holds a control character). Each is at least as long as the
 * value, so a secret's form never matches text its value would not.
 */
function quotedForms(value: string): string[] {
  return [
    pythonRepr(value, false, false),
    pythonRepr(value, true, false),
    pythonRepr(value, false, true),
    pythonRepr(value, true, true),
    pythonBytesRepr(value, false),
    pythonBytesRepr(value, true),
    value.replaceAll("'", `'"'"'`),
    value.replaceAll("'", `'\\''`),
    // eslint-disable-next-line no-control-regex -- bash's printf %q switches to $'…' for control characters
    /[\x00-\x1f\x7f]/.test(value) ? bashAnsiC(value) : bashBackslashed(value),
  ];
}

/** Characters Python's str.isprintable() refuses (other than the space): repr escapes them. */
const PY_UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;
const PY_ESCAPES: Record<string, string> = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** Python's `\xNN`, `\uNNNN` or `\UNNNNNNNN` for code point `c`. */
function pythonHex(c: number): string {
  return c < 0x100 ? `\\x${c.toString(16).padStart(2, "0")}` : c < 0x10000 ? `\\u${c.toString(16).padStart(4, "0")}` : `\\U${c.toString(16).padStart(8, "0")}`;
}

/** The inside of Python's repr(value) (ascii(value) when `ascii`), with `'` escaped when `quote`. */
function pythonRepr(value: string, quote: boolean, ascii: boolean): string {
  let out = "";
  for (const c of value) {
    const code = c.codePointAt(0)!;
    if (PY_ESCAPES[c]) out += PY_ESCAPES[c];
    else if (c === "'" && quote) out += "\\'";
    else if (code < 0x20 || code === 0x7f || (code > 0x7f && (ascii || (c !== " " && PY_UNPRINTABLE.test(c))))) out += pythonHex(code);
    else out += c;
  }
  return out;
}

/** The inside of Python's repr(value.encode()) (b'\xc3\xa9' for "é"), with `'` escaped when `quote`. */
function pythonBytesRepr(value: string, quote: boolean): string {
  let out = "";
  for (const byte of Buffer.from(value, "utf8")) {
    const c = String.fromCharCode(byte);
    out += PY_ESCAPES[c] ?? (c === "'" && quote ? "\\'" : byte < 0x20 || byte >= 0x7f ? pythonHex(byte) : c);
  }
  return out;
}

/** What bash's printf %q puts a backslash before (`#` and `~` only where they would start a word or a tilde expansion). */
const BASH_SPECIAL = new Set(" \t\n'\"\\|&;()<>!{}*[?]^$`,");

function bashBackslashed(value: string): string {
  let out = "";
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    const special = BASH_SPECIAL.has(c) || (c === "#" && i === 0) || (c === "~" && (i === 0 || value[i - 1] === "=" || value[i - 1] === ":"));
    out += special ? `\\${c}` : c;
  }
  return out;
}

const BASH_ESCAPES: Record<string, string> = { "\x07": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v", "\x1b": "\\E", "\\": "\\\\", "'": "\\'" };

/** The inside of bash's `$'…'` quoting (printf %q of a value with control characters). */
function bashAnsiC(value: string): string {
  let out = "";
  for (const c of value) {
    const code = c.codePointAt(0)!;
    out += BASH_ESCAPES[c] ?? (code < 0x20 || code === 0x7f ? `\\${code.toString(8).padStart(3, "0")}` : c);
  }
  return out;
}

/** The indexes of the start and end pairs in `spans`, ordered by where they start. */
function byStart(spans: readonly number[]): number[] {
  return Array.from({ length: spans.length / 2 }, (_, k) => k).sort((a, b) => spans[2 * a]! - spans[2 * b]!);
}

const HTML: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;" };

const NUMBER_CHARS = /^[0-9.eE+-]+$/;

function codePoints(value: string): number {
  let n = 0;
  for (const _ of value) if (++n >= MIN_MASKED_LENGTH) break;
  return n;
}
