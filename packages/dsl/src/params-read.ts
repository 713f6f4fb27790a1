/**
 * Which flow params a function task reads through its context (`ctx.params.lr`,
 * `({ x }, { params }) => params.lr`), found from the function's text, so that their values
 * enter the task's cache key (TaskDefinition.paramsRead). Like the code analysis beside it, it
 * errs towards running again: when which params cannot be told, the answer is "all", and every
 * param counts. That is so when the context is handed on whole (`(i, ctx) => train(i, ctx)`),
 * taken with a rest parameter (`(...args) => f(...args)`, what a wrapper such as `timed(fn)`
 * returns), read through a computed name or `arguments`, or when the text does not show the code
 * (a bound function's `[native code]`): a helper's reads are not looked into. A function whose
 * text can reach no context (no second parameter, no rest, no `arguments`, which needs a comma,
 * `...` or the word) costs one regular expression.
 */

import { isStrings, keptAnalysis, parseFunctionText } from "./code-deps.ts";

/** The names of the params `fnText` reads through its second argument, or "all". */
export async function paramsReadBy(fnText: string): Promise<readonly string[] | "all"> {
  // The context is the second argument: reaching it takes a second parameter (a comma), a rest
  // (`...`), `arguments` or `params` by name; a native function's text shows nothing.
  if (!/\bparams\b|\barguments\b|,|\.\.\.|\[native code\]/.test(fnText)) return NONE;
  let fn = memo.get(fnText);
  if (!fn) {
    // Kept on disk (code-deps.ts): a warm run's tasks parse nothing for it.
    fn = keptAnalysis("params", fnText, (kept): kept is readonly string[] | "all" => kept === "all" || isStrings(kept), () => analyse(fnText));
    memo.set(fnText, fn);
  }
  return fn;
}

const NONE: readonly string[] = Object.freeze([]);
const memo = new Map<string, Promise<readonly string[] | "all">>();

type Node = { type: string; [field: string]: unknown };

async function analyse(fnText: string): Promise<readonly string[] | "all"> {
  const program = await parseFunctionText(fnText);
  let fn = ((program?.body as Node[] | undefined)?.[0] as Node | undefined)?.expression as Node | undefined;
  // A method parses inside an object: the function is its first property's value.
  if (fn?.type === "ObjectExpression") fn = ((fn.properties as Node[])[0] as Node | undefined)?.value as Node | undefined;
  return fn && /Function/.test(fn.type) ? readsOf(fn) : "all"; // not parsable on its own: every param counts
}

/** What a function reads of its second argument's `params`. */
function readsOf(fn: Node): readonly string[] | "all" {
  const params = fn.params as Node[];
  // `arguments` holds the context whatever the parameters are (a nested function's own counts too: erring towards all).
  if (uses(fn, "arguments", "whole") === "all") return "all";
  const rest = params.findIndex((p) => p.type === "RestElement");
  if (rest !== -1 && rest <= 1) {
    // `(...args)` or `(i, ...more)`: the rest holds the context; used at all, which params cannot be told.
    const argument = params[rest]!.argument as Node;
    if (argument.type !== "Identifier") return "all"; // `(...[i, ctx])`
    return uses({ ...fn, params: params.filter((_, i) => i !== rest) }, argument.name as string, "whole") === "all" ? "all" : NONE;
  }
  const others = { ...fn, params: params.filter((_, i) => i !== 1) };
  let ctx = params[1];
  if (!ctx) return NONE;
  if (ctx.type === "AssignmentPattern") ctx = ctx.left as Node;
  if (ctx.type === "Identifier") return uses(others, ctx.name as string, "ctx");
  if (ctx.type === "ObjectPattern") return fromPattern(ctx, others);
  return "all";
}

/** `{ params }`, `{ params: p }`, `{ params: { lr } }` in a pattern that takes the context apart. */
function fromPattern(pattern: Node, scope: Node): readonly string[] | "all" {
  for (const prop of pattern.properties as Node[]) {
    if (prop.type === "RestElement" || prop.computed) return "all";
    const key = prop.key as Node;
    if (key.type !== "Identifier" || key.name !== "params") continue;
    let value = prop.value as Node;
    if (value.type === "AssignmentPattern") value = value.left as Node;
    if (value.type === "Identifier") return uses(scope, value.name as string, "params");
    if (value.type === "ObjectPattern") return keysOf(value);
    return "all";
  }
  return NONE;
}

/** The keys an object pattern takes (`{ lr, depth: d }`), or "all" with a rest or computed key. */
function keysOf(pattern: Node): readonly string[] | "all" {
  const names: string[] = [];
  for (const prop of pattern.properties as Node[]) {
    if (prop.type === "RestElement" || prop.computed) return "all";
    const key = prop.key as Node;
    if (key.type === "Identifier") names.push(key.name as string);
    else if (key.type === "Literal") names.push(String(key.value));
    else return "all";
  }
  return names.sort();
}

/**
 * What the references to `name` in `root` read: as the context (`ctx.params.lr`), as the
 * params themselves (`params.lr`), or, for `arguments`, anything at all.
 */
function uses(root: Node, name: string, as: "ctx" | "params" | "whole"): readonly string[] | "all" {
  const names = new Set<string>();
  let all = false;
  const named = (member: Node): string | undefined => {
    const property = member.property as Node;
    if (!member.computed && property.type === "Identifier") return property.name as string;
    if (member.computed && property.type === "Literal" && typeof property.value === "string") return property.value;
    return undefined;
  };
  /** The params read where `params` (an expression that is the params object) is used, by its parent. */
  const readParams = (params: Node, parent: Node | undefined): void => {
    if (parent?.type === "MemberExpression" && parent.object === params) {
      const n = named(parent);
      if (n === undefined) all = true;
      else names.add(n);
    } else if (parent?.type === "VariableDeclarator" && parent.init === params && (parent.id as Node).type === "ObjectPattern") {
      const keys = keysOf(parent.id as Node);
      if (keys === "all") all = true;
      else for (const k of keys) names.add(k);
    } else all = true;
  };
  const visit = (node: Node, parent: Node | undefined, grand: Node | undefined): void => {
    if (all) return;
    if (node.type === "Identifier" && node.name === name && isReference(node, parent, grand)) {
      if (as === "whole") all = true;
      else if (as === "params") readParams(node, parent);
      else if (parent?.type === "MemberExpression" && parent.object === node) {
        const n = named(parent);
        if (n === "params") readParams(parent, grand);
        else if (n === undefined) all = true; // ctx[something]
      } else if (parent?.type === "VariableDeclarator" && parent.init === node && (parent.id as Node).type === "ObjectPattern") {
        const found = fromPattern(parent.id as Node, root);
        if (found === "all") all = true;
        else for (const k of found) names.add(k);
      } else all = true; // the context passed on whole
      return;
    }
    for (const key in node) {
      if (key === "type") continue;
      const value = node[key];
      if (Array.isArray(value)) {
        for (const child of value) if (isNode(child)) visit(child, node, parent);
      } else if (isNode(value)) visit(value, node, parent);
    }
  };
  visit(root, undefined, undefined);
  return all ? "all" : [...names].sort();
}

function isNode(value: unknown): value is Node {
  return typeof value === "object" && value !== null && typeof (value as Node).type === "string";
}

/** Not a property name (`x.ctx`, `{ ctx: 1 }`) nor a name being bound (a parameter, a declaration, a pattern's part). */
function isReference(node: Node, parent: Node | undefined, grand: Node | undefined): boolean {
  if (!parent) return true;
  switch (parent.type) {
    case "MemberExpression":
      return parent.property !== node || parent.computed === true;
    case "Property":
      if (grand?.type === "ObjectPattern") return false;
      return parent.key !== node || parent.computed === true || parent.shorthand === true;
    case "MethodDefinition":
    case "PropertyDefinition":
      return parent.key !== node || parent.computed === true;
    case "VariableDeclarator":
      return parent.id !== node;
    case "AssignmentPattern":
      return parent.left !== node;
    case "ArrayPattern":
    case "RestElement":
    case "CatchClause":
    case "LabeledStatement":
    case "BreakStatement":
    case "ContinueStatement":
      return false;
    default:
      return !(Array.isArray(parent.params) && parent.params.includes(node)) && !(/Function|Class/.test(parent.type) && parent.id === node);
  }
}
