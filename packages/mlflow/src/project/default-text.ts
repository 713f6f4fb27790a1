/**
 * An MLproject parameter's default as `mlflow run` substitutes it into the command and logs it
 * as a param. MLflow reads the file with PyYAML, whose YAML 1.1 resolvers differ from the YAML
 * 1.2 that Cairn's parser speaks, and writes Python's `str()` of the value: `1.0` is a float
 * whose text is "1.0" (JavaScript's String(1) is "1"), `1e3` is a string to PyYAML (its floats
 * need a dot), `0x10` is 16, `true` and `yes` are "True". Only plain scalars are resolved;
 * quoted ones are the same string to both. The regular expressions and constructors below are
 * PyYAML's (yaml/resolver.py, yaml/constructor.py), so that this text is MLflow's.
 */

const BOOL = /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/;
const TRUE = /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/;
const FLOAT =
  /^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/;
const INT = /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/;

/**
 * The text `mlflow run` gives a plain (unquoted, untagged) YAML scalar written `source`. A
 * scalar PyYAML would refuse to construct (`0b_`) is left as written: MLflow fails on it anyway.
 */
export function mlflowPlainScalarText(source: string): string {
  if (BOOL.test(source)) return TRUE.test(source) ? "True" : "False";
  try {
    if (INT.test(source)) return pythonInt(source).toString();
    if (FLOAT.test(source)) return pythonFloatText(pythonFloat(source));
  } catch {
    return source;
  }
  return source;
}

/** PyYAML's construct_yaml_int, exact at any size (Python's ints are unbounded). */
function pythonInt(source: string): bigint {
  let value = source.replaceAll("_", "");
  const sign = value.startsWith("-") ? -1n : 1n;
  if (value[0] === "+" || value[0] === "-") value = value.slice(1);
  if (value === "0") return 0n;
  if (value.startsWith("0b") || value.startsWith("0x")) return sign * BigInt(value);
  if (value.startsWith("0")) return sign * BigInt(`0o${value.slice(1)}`);
  if (value.includes(":")) return sign * value.split(":").reduce((sum, part) => sum * 60n + BigInt(part), 0n);
  return sign * BigInt(value);
}

/** PyYAML's construct_yaml_float, with the same float operations in the same order. */
function pythonFloat(source: string): number {
  let value = source.replaceAll("_", "").toLowerCase();
  const sign = value.startsWith("-") ? -1 : 1;
  if (value[0] === "+" || value[0] === "-") value = value.slice(1);
  if (value === ".inf") return sign * Number.POSITIVE_INFINITY;
  if (value === ".nan") return Number.NaN;
  if (value.includes(":")) {
    let sum = 0;
    let base = 1;
    for (const digit of value.split(":").map(Number).reverse()) {
      sum += digit * base;
      base *= 60;
    }
    return sign * sum;
  }
  return sign * Number(value);
}

/**
 * Python's str() of a float: the shortest digits that read back as the same number (as
 * JavaScript's), written with a decimal point (`1.0`), in exponent form below 1e-4 and from
 * 1e16 on, with at least two exponent digits (`1e-05`, `1e+16`).
 */
export function pythonFloatText(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  const sign = x < 0 || Object.is(x, -0) ? "-" : "";
  if (x === 0) return `${sign}0.0`;
  const [mantissa = "", exponent = "0"] = Math.abs(x).toExponential().split("e");
  const digits = mantissa.replace(".", "");
  // The number is 0.<digits> times 10 to the power of `point`.
  const point = Number(exponent) + 1;
  if (point > -4 && point <= 16) {
    if (point <= 0) return `${sign}0.${"0".repeat(-point)}${digits}`;
    if (point >= digits.length) return `${sign}${digits}${"0".repeat(point - digits.length)}.0`;
    return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
  }
  const e = point - 1;
  return `${sign}${digits[0]}${digits.length > 1 ? `.${digits.slice(1)}` : ""}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
}
