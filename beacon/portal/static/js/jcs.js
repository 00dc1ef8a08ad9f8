// RFC 8785 JSON Canonicalization Scheme (JCS): the bytes Beacon signs and hashes.
//
// RFC 8785 is defined by ECMAScript's own serialisation, so this is JSON.stringify applied with the
// scheme's two extra rules: object members sorted by their names' UTF-16 code units (the default
// order of Array.prototype.sort on strings), and refusal of what has no canonical form (lone
// surrogates, non-finite numbers, undefined, functions, BigInt). It must give byte-identical
// results to beacon.canonical.jcs: tests/portal/vectors/jcs.json holds both sides to that.

export class CanonicalizationError extends Error {
  constructor(message) {
    super(`cannot canonicalize (RFC 8785): ${message}`);
    this.name = "CanonicalizationError";
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function serializeString(text) {
  if (LONE_SURROGATE.test(text)) throw new CanonicalizationError("lone surrogate in a string");
  return JSON.stringify(text);
}

function serialize(value, depth) {
  if (depth > 1000) throw new CanonicalizationError("nested too deeply");
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new CanonicalizationError(`${value} has no JSON form`);
      return JSON.stringify(value); // Number::toString, -0 as "0": RFC 8785 §3.2.2.3
    case "string":
      return serializeString(value);
    case "object":
      break;
    default:
      throw new CanonicalizationError(`unsupported type ${typeof value}`);
  }
  if (Array.isArray(value)) {
    return "[" + value.map((item) => serialize(item, depth + 1)).join(",") + "]";
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw new CanonicalizationError(`unsupported object ${proto?.constructor?.name ?? "?"}`);
  }
  const names = Object.keys(value).sort();
  return (
    "{" +
    names.map((name) => serializeString(name) + ":" + serialize(value[name], depth + 1)).join(",") +
    "}"
  );
}

/** The RFC 8785 text of a JSON value. */
export function canonicalize(value) {
  return serialize(value, 0);
}

/** The RFC 8785 bytes (UTF-8) of a JSON value. */
export function canonicalBytes(value) {
  return new TextEncoder().encode(canonicalize(value));
}
