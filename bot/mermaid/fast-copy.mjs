// A faster, result-identical path for mermaid's `assignWithDepth` when it copies into a fresh, empty object.
//
// Why: mermaid's getConfig() returns `assignWithDepth({}, currentConfig)`, a depth-2 copy of the whole
// configuration (~900 properties), and the flowchart database calls it for every vertex; the same copy runs
// several times per diagram in updateCurrentConfig(). With Object.entries, Object.hasOwn and one
// Object.defineProperty per key, that copy is more than half of all parse time.
//
// Why the result is identical: for an empty, extensible plain object `dst` (prototype Object.prototype, no own
// keys), the original walks Object.entries(src) and, per key: skips null values; gives arrays a new array with
// duplicates removed (push unless includes); gives other objects a new plain object filled by a recursive call
// one level shallower (Object.assign at depth 0); and defines every other value as an ordinary writable,
// enumerable, configurable data property. `copyInto` does exactly that, key by key in the same order, with
// plain assignment, which creates the same data property on such an object for every key except
// "__proto__" (handled explicitly below, as the original treats it) and except keys that Object.prototype
// has a setter for (install() refuses to enable the fast path when any such setter exists). Every other
// call (non-empty or non-plain dst, arrays, unusual depth or options) runs the original unchanged.
// ATLAS_MERMAID_VERIFY_COPY=1 runs both on every fast-path call and throws on any difference in keys,
// order, property attributes, prototypes, freshness of copied containers or identity of shared leaves.

const PROTO = "__proto__";

const hasForeignSetters = () =>
  Object.entries(Object.getOwnPropertyDescriptors(Object.prototype)).some(
    ([key, descriptor]) => key !== PROTO && descriptor.set !== undefined,
  );

const dedupe = (list) => {
  const copy = [];
  list.forEach((item) => {
    if (!copy.includes(item)) {
      copy.push(item);
    }
  });
  return copy;
};

const defineData = (target, key, value) =>
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });

// dst is an empty plain object and depth an integer >= 1.
const copyInto = (dst, src, depth) => {
  for (const key of Object.keys(src)) {
    const value = src[key];
    if (typeof value !== "object") {
      // The original leaves "__proto__" out here: on the empty object it reads the inherited prototype.
      if (key !== PROTO) {
        dst[key] = value;
      }
      continue;
    }
    if (value === null) {
      continue;
    }
    let copy;
    if (Array.isArray(value)) {
      copy = dedupe(value);
    } else if (depth > 1) {
      copy = copyInto({}, value, depth - 1);
    } else {
      copy = Object.assign({}, value);
    }
    if (key === PROTO) {
      defineData(dst, key, copy);
    } else {
      dst[key] = copy;
    }
  }
  return dst;
};

const isFreshTarget = (dst) =>
  dst !== null &&
  typeof dst === "object" &&
  Object.getPrototypeOf(dst) === Object.prototype &&
  Object.isExtensible(dst) &&
  Reflect.ownKeys(dst).length === 0;

const fastDepth = (options) => {
  if (options === undefined) {
    return 2;
  }
  if (options === null || typeof options !== "object") {
    return undefined;
  }
  const { depth } = options;
  if (depth === undefined) {
    return 2;
  }
  return Number.isInteger(depth) ? depth : undefined;
};

// Structural comparison used only by the verification mode: same prototypes, keys in the same order, same
// property attributes, new containers where the original made new ones, the same leaves where it shared them.
const sameCopy = (fast, reference, source, depth, path) => {
  if (typeof reference !== "object" || reference === null || depth < 0) {
    if (!Object.is(fast, reference)) {
      throw new Error(`fast copy differs from assignWithDepth at ${path || "<root>"}`);
    }
    return;
  }
  if (typeof fast !== "object" || fast === null || fast === reference || fast === source) {
    throw new Error(`fast copy shares or lacks a container at ${path || "<root>"}`);
  }
  if (Object.getPrototypeOf(fast) !== Object.getPrototypeOf(reference)) {
    throw new Error(`fast copy has another prototype at ${path || "<root>"}`);
  }
  if (Array.isArray(reference)) {
    // Arrays are copied one level deep at any depth: their items are shared.
    if (fast.length !== reference.length || fast.some((item, index) => !Object.is(item, reference[index]))) {
      throw new Error(`fast copy has other array items at ${path}`);
    }
    return;
  }
  const keys = Reflect.ownKeys(fast);
  const expected = Reflect.ownKeys(reference);
  if (keys.length !== expected.length || keys.some((key, index) => key !== expected[index])) {
    throw new Error(`fast copy has other keys at ${path || "<root>"}`);
  }
  for (const key of keys) {
    const a = Object.getOwnPropertyDescriptor(fast, key);
    const b = Object.getOwnPropertyDescriptor(reference, key);
    for (const attribute of ["writable", "enumerable", "configurable", "get", "set"]) {
      if (a[attribute] !== b[attribute]) {
        throw new Error(`fast copy has another ${attribute} at ${path}.${String(key)}`);
      }
    }
    const next = source !== null && typeof source === "object" ? source[key] : undefined;
    sameCopy(a.value, b.value, next, depth - 1, `${path}.${String(key)}`);
  }
};

/**
 * Returns a drop-in replacement for mermaid's assignWithDepth, or the original when the fast path cannot be
 * proven equivalent in this process. `reference` is an untouched copy of the original (its recursion does not
 * go through the replacement), used by the verification mode.
 */
export function wrapAssignWithDepth(original, { verify = false, reference = original } = {}) {
  if (hasForeignSetters()) {
    return original;
  }
  return (dst, src, options) => {
    const depth = fastDepth(options);
    if (depth === undefined || src === null || typeof src !== "object" || Array.isArray(src) || !isFreshTarget(dst)) {
      return original(dst, src, options);
    }
    if (depth <= 0) {
      return Object.assign(dst, src);
    }
    const copy = copyInto(dst, src, depth);
    if (verify) {
      sameCopy(copy, reference({}, src, options), src, depth, "");
    }
    return copy;
  };
}
