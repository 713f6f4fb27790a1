/**
 * How a function task reads `process.env` itself, found from the function's text: the variables
 * it reads by a literal name (`process.env.SCALE`, `process.env["SCALE"]`, with or without `?.`),
 * so that their values enter the task's cache key as declared ones do (TaskDefinition.envRead): a
 * task that reads `SCALE` computed with one value is no hit for a machine that has another; and
 * whether it also reads it in a way whose names the text does not show (a computed name,
 * `process.env[name]`; a destructuring, `const { SCALE } = process.env`; `process.env` handed
 * on), which no key can follow (TaskDefinition.envReadUnnamed), so that a run whose `env`
 * differs from `process.env` can still warn of it. Only the function's own text is read: what a
 * helper it calls reads is not followed (declare those with `.env()`). Errs towards more: a
 * literal read in a comment or a string counts too.
 *
 * The text alone cannot tell `env.SCALE` after `import { env } from "node:process"` from a read
 * of some other `env`, nor a read from a mention in a string: the code dependencies, which parse
 * the function and its module, find its reads (processNamesOf, envReadsIn) and give them to the
 * key instead of these (ENV_READ_ENTRY); these count only when the function cannot be parsed or
 * its module not read.
 */

/** What a function's text reads from `process.env`. */
export interface EnvReads {
  /** The variables it reads by a literal name, sorted, each once. */
  readonly names: readonly string[];
  /** It also reads `process.env` otherwise (a computed name, a destructuring, handed on whole): by names its text does not show. */
  readonly unnamed: boolean;
}

/** `process.env.NAME`, `process.env?.NAME`, `process.env["NAME"]`, `process.env?.['NAME']`, `` process.env[`NAME`] ``. */
const LITERAL_READ = /\bprocess\s*\.\s*env\s*(?:\?\.\s*|\.\s*)([A-Za-z_$][\w$]*)|\bprocess\s*\.\s*env\s*(?:\?\.\s*)?\[\s*(["'`])([^"'`\\$\s=]+)\2\s*\]/g;

/** `process.env` itself, however it is then used. */
const ANY_READ = /\bprocess\s*\.\s*env\b/;

/** How `fnText` reads `process.env`: the names it reads by a literal name, and whether it reads it otherwise too. */
export function envReadBy(fnText: string): EnvReads {
  if (!fnText.includes("env")) return NONE;
  const names = new Set<string>();
  for (const m of fnText.matchAll(LITERAL_READ)) names.add((m[1] ?? m[3])!);
  // What is left once every literal read is taken out reads by a name the text does not show.
  const unnamed = ANY_READ.test(fnText.replace(LITERAL_READ, ""));
  return { names: [...names].sort(), unnamed };
}

const NONE: EnvReads = Object.freeze({ names: Object.freeze([]), unnamed: false });

// ------------------------------------------------------------------ reads through another name

/**
 * The top-level names of a module bound to `process` or to `process.env` otherwise than by that
 * text: `import { env } from "node:process"` (or `"process"`, or `{ env as e }`), `import * as proc
 * from "node:process"` (or its default), `const e = process.env`, `const { env } = process`.
 * A function that reads `env.SCALE` or `proc.env.SCALE` reads the variable as `process.env.SCALE`
 * does, which the function's text alone does not tell.
 */
export interface ProcessNames {
  /** Names bound to `process` itself. */
  readonly process: readonly string[];
  /** Names bound to `process.env`. */
  readonly env: readonly string[];
}

/** The parts of a syntax tree (acorn's, ESTree) these functions read. */
export interface SyntaxNode {
  type: string;
  [field: string]: unknown;
}

const PROCESS_MODULES = new Set(["process", "node:process"]);

/** The names a module's top-level statements (`body`) bind to `process` or `process.env`; undefined for none. */
export function processNamesOf(body: readonly SyntaxNode[]): ProcessNames | undefined {
  // `process` itself, so that `const e = process.env` binds `e`; not returned, every function has it.
  const names = { process: new Set<string>(["process"]), env: new Set<string>() };
  for (const statement of body) {
    const from = statement.type === "ImportDeclaration" ? String((statement.source as SyntaxNode).value) : undefined;
    if (from !== undefined && PROCESS_MODULES.has(from)) {
      // esbuild compiling the module to CommonJS (tsx, outside a `"type": "module"` package) writes
      // `env.SCALE` as `import_node_process.env.SCALE`: that name is the module too.
      names.process.add(`import_${from.replace(/\W/g, "_")}`);
      for (const s of statement.specifiers as SyntaxNode[]) {
        const local = (s.local as SyntaxNode).name as string;
        const imported = s.type === "ImportSpecifier" ? propertyName(s.imported as SyntaxNode) : "default";
        if (imported === "env") names.env.add(local);
        else if (imported === "default" || s.type === "ImportNamespaceSpecifier") names.process.add(local);
      }
    }
    const declaration = statement.type === "ExportNamedDeclaration" ? (statement.declaration as SyntaxNode | null) : statement;
    if (declaration?.type === "VariableDeclaration") for (const d of declaration.declarations as SyntaxNode[]) bindAlias(d, names);
  }
  names.process.delete("process");
  return names.process.size || names.env.size ? { process: [...names.process], env: [...names.env] } : undefined;
}

/**
 * What the function `program` holds (a function's text, parsed) reads from `process.env`, also
 * through `bound` (the names its module binds to `process` or `process.env`) and through names it
 * binds itself (`const e = process.env`): each variable read by a literal name (`env.SCALE`,
 * `e["SCALE"]`, `proc.env?.SCALE`), and whether it reads the object otherwise (`env[name]`, `{
 * ...env }`, `helper(env)`, a destructuring), by names no key can follow. A name the function
 * declares again counts still (it errs towards more).
 */
export function envReadsIn(program: SyntaxNode, bound: ProcessNames | undefined): EnvReads {
  const names = { process: new Set(["process", ...(bound?.process ?? [])]), env: new Set(bound?.env ?? []) };
  // Aliases first, wherever they are in the function: a read before its alias's line is a closure's.
  const aliases = new Set<SyntaxNode>();
  const visitDeclarators = (node: SyntaxNode): void => {
    if (node.type === "VariableDeclarator" && bindAlias(node, names)) aliases.add(node);
    for (const child of children(node)) visitDeclarators(child);
  };
  visitDeclarators(program);
  const read = new Set<string>();
  let unnamed = false;
  const visit = (node: SyntaxNode, parent: SyntaxNode | undefined, field: string): void => {
    if (aliases.has(node)) return;
    // A name after a dot or as a property key refers to nothing (`cfg.env`, `{ env: 1 }`).
    if (node.type === "Identifier" && parent && isKeyPosition(parent, field)) return;
    const member = parent?.type === "MemberExpression" && field === "object";
    if (isEnv(node, names)) {
      const name = member ? readName(parent) : undefined;
      if (name !== undefined) read.add(name);
      else unnamed = true;
      return;
    }
    // `process` handed on whole (`helper(process)`, `{ ...process }`) may have its env read anywhere.
    if (isProcess(node, names) && !member) {
      unnamed = true;
      return;
    }
    for (const [key, child] of fields(node)) visit(child, node, key);
  };
  visit(program, undefined, "");
  return { names: [...read].sort(), unnamed };
}

/** Adds the name `declarator` binds to `process` or `process.env` (`const e = process.env`, `const { env: e } = proc`) to `names`; whether it bound one. */
function bindAlias(declarator: SyntaxNode, names: { process: Set<string>; env: Set<string> }): boolean {
  const id = declarator.id as SyntaxNode;
  const init = declarator.init as SyntaxNode | null;
  if (!init) return false;
  if (id.type === "Identifier" && isEnv(init, names)) return (names.env.add(id.name as string), true);
  if (id.type === "Identifier" && isProcess(init, names)) return (names.process.add(id.name as string), true);
  if (id.type !== "ObjectPattern" || !isProcess(init, names)) return false;
  // `const { env, argv } = process`: `env` is bound to it, `argv` reads no variable. A rest
  // element, a computed key or a nested pattern of `env` may hold it unseen: read otherwise.
  let bound = true;
  for (const p of id.properties as SyntaxNode[]) {
    const key = p.type === "Property" ? propertyName(p.key as SyntaxNode, p.computed as boolean) : undefined;
    if (key === undefined) bound = false;
    else if (key === "env" && (p.value as SyntaxNode).type === "Identifier") names.env.add((p.value as SyntaxNode).name as string);
    else if (key === "env") bound = false;
  }
  return bound;
}

/** `process`, `globalThis.process`, or a name bound to it. */
function isProcess(node: SyntaxNode, names: { process: ReadonlySet<string> }): boolean {
  if (node.type === "Identifier") return names.process.has(node.name as string);
  return node.type === "MemberExpression" && (node.object as SyntaxNode).type === "Identifier" && (node.object as SyntaxNode).name === "globalThis" && readName(node) === "process";
}

/** `process.env` (through any name bound to `process`), or a name bound to it. */
function isEnv(node: SyntaxNode, names: { process: ReadonlySet<string>; env: ReadonlySet<string> }): boolean {
  if (node.type === "Identifier") return names.env.has(node.name as string);
  if (node.type === "ChainExpression") return isEnv(node.expression as SyntaxNode, names);
  return node.type === "MemberExpression" && readName(node) === "env" && isProcess(node.object as SyntaxNode, names);
}

/** The property a member expression reads by a literal name (`o.NAME`, `o["NAME"]`, `` o[`NAME`] ``); undefined for a computed one. */
function readName(member: SyntaxNode): string | undefined {
  return propertyName(member.property as SyntaxNode, member.computed as boolean);
}

function propertyName(key: SyntaxNode, computed = false): string | undefined {
  if (!computed && key.type === "Identifier") return key.name as string;
  if (key.type === "Literal" && typeof key.value === "string") return key.value;
  const quasis = key.type === "TemplateLiteral" && (key.expressions as unknown[]).length === 0 ? (key.quasis as SyntaxNode[]) : undefined;
  return quasis ? ((quasis[0]!.value as { cooked: string }).cooked ?? undefined) : undefined;
}

function isKeyPosition(parent: SyntaxNode, field: string): boolean {
  if (parent.computed) return false;
  if (field === "property") return parent.type === "MemberExpression";
  return field === "key" && !parent.shorthand && (parent.type === "Property" || parent.type === "MethodDefinition" || parent.type === "PropertyDefinition");
}

/** The syntax nodes directly under `node`, each with the field that holds it. */
function* fields(node: SyntaxNode): Generator<[string, SyntaxNode]> {
  for (const [key, value] of Object.entries(node)) {
    for (const child of Array.isArray(value) ? value : [value]) {
      if (child && typeof child === "object" && typeof (child as SyntaxNode).type === "string") yield [key, child as SyntaxNode];
    }
  }
}

function* children(node: SyntaxNode): Generator<SyntaxNode> {
  for (const [, child] of fields(node)) yield child;
}
