// Faster, result-identical versions of the configuration copies that dominate mermaid.parse() time.
//
// Why: getConfig() returns `assignWithDepth({}, currentConfig)`, a depth-2 copy of the whole configuration
// (about 900 properties); the flowchart database calls it for every vertex, and updateCurrentConfig() makes
// the same kind of copy several times per diagram. With Object.entries, Object.hasOwn and one
// Object.defineProperty per key, those copies were more than half of all parse time.
//
// What the original does when `dst` is an empty, extensible plain object (prototype Object.prototype, no own
// keys): it walks Object.entries(src) and, per key, skips null values; gives arrays a new array without
// duplicates (push unless includes); gives other objects a new plain object filled by a recursive call one
// level shallower, which at depth 0 is Object.assign; and defines every other value as an ordinary writable,
// enumerable, configurable data property. For "__proto__" it defines an own property when the value is an
// object and skips it otherwise (it reads the inherited accessor).
//
// Only for such a `dst`, an integer depth and a non-array object `src` (every other call runs the original
// unchanged), the same result is built in one of two ways:
// - copyInto: the same walk with plain assignment, which on such an object creates the same data property
//   for every key except "__proto__" (handled as the original does) and except keys that Object.prototype
//   has a setter for (nothing is replaced when such a setter exists; neither mermaid's bundle nor linkedom
//   defines one).
// - a compiled shape: for a source whose shape (keys in order and the kind of each value: primitive, null,
//   array, object, down to the level where the copy recurses) has been met COMPILE_AFTER times, a function
//   is compiled that builds the copy as one object literal (V8 makes those from a boilerplate, tens of times
//   faster than key-by-key stores). It follows the same per-kind rules, reads every value afresh in the
//   original's key order, and runs only after the source's shape has been matched exactly. A literal key
//   defines the same data property as defineProperty, except "__proto__": shapes with it are never compiled.
//   The copy is moved into `dst` with Object.assign (same keys, same order).
// The copies of currentConfig and siteConfig (makeConfigCopier) match the shape once per object, not per call,
// and a new currentConfig that is a compiled copy keeping its source's shape, or merged with changes whose
// resulting shape was learnt (mergeSignature), is not matched at all.
// updateCurrentConfig's result is itself reused when its inputs recur (knownConfig), and the flowchart
// database's read-only copy of it is made once per configuration object (makeFlowConfigReuse).
//
// ATLAS_MERMAID_VERIFY_COPY=1 also runs the untouched original on every fast copy and throws on any
// difference in keys, order, property attributes, prototypes, fresh containers or identity of shared leaves;
// it builds every reused configuration and copy afresh too, and compares them the same way.

const PROTO = "__proto__";
const COMPILE_AFTER = 32; // compiling a 900-property shape costs about as much as a hundred copies
const MAX_SHAPES = 16;
const CONFIG_DEPTH = 2; // getConfig copies with assignWithDepth's default depth

const PRIMITIVE = 0;
const NULL = 1;
const ARRAY = 2;
const NESTED = 3; // an object copied by recursion
const SHALLOW = 4; // an object copied by Object.assign (depth 0)
const END = "";

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

const kindOf = (value, depth) => {
  if (typeof value !== "object") {
    return PRIMITIVE;
  }
  if (value === null) {
    return NULL;
  }
  if (Array.isArray(value)) {
    return ARRAY;
  }
  return depth > 1 ? NESTED : SHALLOW;
};

// dst is an empty plain object, depth an integer >= 1.
const copyInto = (dst, src, depth) => {
  for (const key of Object.keys(src)) {
    const value = src[key];
    const kind = kindOf(value, depth);
    if (kind === NULL || (kind === PRIMITIVE && key === PROTO)) {
      continue;
    }
    let copy = value;
    if (kind === ARRAY) {
      copy = dedupe(value);
    } else if (kind === NESTED) {
      copy = copyInto({}, value, depth - 1);
    } else if (kind === SHALLOW) {
      copy = Object.assign({}, value);
    }
    if (key === PROTO) {
      Object.defineProperty(dst, key, { value: copy, writable: true, enumerable: true, configurable: true });
    } else {
      dst[key] = copy;
    }
  }
  return dst;
};

// A shape is the flat list of key, kind pairs met walking the levels the copy recurses into, in key order,
// with END, END closing every object: two sources have the same shape exactly when their lists are equal.
const shapeOf = (object, depth, shape = []) => {
  for (const key of Object.keys(object)) {
    if (key === PROTO) {
      return null;
    }
    const kind = kindOf(object[key], depth);
    shape.push(key, kind);
    if (kind === NESTED && shapeOf(object[key], depth - 1, shape) === null) {
      return null;
    }
  }
  shape.push(END, END);
  return shape;
};

// Index just past `object`'s part of `shape` from `at`, or -1 when the object does not have that shape.
const matchShape = (object, depth, shape, at) => {
  for (const key of Object.keys(object)) {
    const kind = kindOf(object[key], depth);
    if (shape[at] !== key || shape[at + 1] !== kind) {
      return -1;
    }
    at += 2;
    if (kind === NESTED) {
      at = matchShape(object[key], depth - 1, shape, at);
      if (at < 0) {
        return -1;
      }
    }
  }
  return shape[at] === END && shape[at + 1] === END ? at + 2 : -1;
};

// Compiles `(src, dedupe) => copy` for src's shape, e.g. {"a": src["a"], "b": (v0 = src["b"], {"c": ...})}.
const compileShape = (object, depth) => {
  let temporaries = 0;
  const literal = (expression, source, level) => {
    const parts = [];
    for (const key of Object.keys(source)) {
      const name = JSON.stringify(key);
      const read = `${expression}[${name}]`;
      const kind = kindOf(source[key], level);
      if (kind === PRIMITIVE) {
        parts.push(`${name}: ${read}`);
      } else if (kind === ARRAY) {
        parts.push(`${name}: dedupe(${read})`);
      } else if (kind === NESTED) {
        const temporary = `v${temporaries++}`;
        parts.push(`${name}: (${temporary} = ${read}, ${literal(temporary, source[key], level - 1)})`);
      } else if (kind === SHALLOW) {
        parts.push(`${name}: Object.assign({}, ${read})`);
      }
    }
    return `{${parts.join(", ")}}`;
  };
  const body = literal("src", object, depth);
  const names = Array.from({ length: temporaries }, (_, i) => `v${i}`);
  const declarations = names.length > 0 ? `let ${names.join(", ")};` : "";
  return new Function("src", "dedupe", `"use strict"; ${declarations} return ${body};`);
};

// Whether merging `changes` into `dst` with assignWithDepth(dst, changes, { depth }) leaves dst's shape as it
// is; false where that is not certain. The original, per key of changes: skips a null; gives a primitive to
// a key dst has, where it replaces a primitive (a primitive again) or leaves an object, and otherwise defines
// a new key; for an object, creates a new key (missing) or a new container (undefined), leaves a primitive
// alone, and recurses into an object, one level shallower. At depth 1 that recursion (Object.assign or
// array pushes) returns the same object, whose kind does not change; deeper, arrays merged into arrays stay
// arrays and plain objects into plain objects are checked the same way. dst has no null values.
const mergeKeepsShape = (dst, changes, depth) =>
  Object.keys(changes).every((key) => {
    const change = changes[key];
    if (change === null) {
      return true;
    }
    if (!Object.hasOwn(dst, key)) {
      return false;
    }
    const current = dst[key];
    if (typeof change !== "object" || (typeof current !== "object" && current !== undefined)) {
      return true;
    }
    if (current === undefined || current === null) {
      return false;
    }
    if (depth <= 1 || (Array.isArray(change) && Array.isArray(current))) {
      return true;
    }
    return !Array.isArray(change) && !Array.isArray(current) && mergeKeepsShape(current, change, depth - 1);
  });

// A key for merging `changes` into `dst` with assignWithDepth(dst, changes) (depth 2), such that merges with
// the same key into objects of the same shape give objects of the same new shape; null for changes outside
// these cases. Per key of changes, in order, the original skips a null; a primitive replaces a primitive,
// leaves an object alone, or is added as a new key; a plain object of primitives and nulls is copied as a new
// key (a plain object of its non-null entries) when dst lacks the key, and merged key by key into an object
// dst holds there (the same three cases, one level down). Which case applies is read from dst's shape,
// except where an object meets a primitive (undefined gets a new container, other primitives stay): such
// changes, arrays and "__proto__" keys get no key.
const mergeSignature = (dst, changes) => {
  const parts = [];
  for (const key of Object.keys(changes)) {
    const change = changes[key];
    if (key === PROTO) {
      return null;
    }
    if (change === null || typeof change !== "object") {
      parts.push(key, change === null ? NULL : PRIMITIVE);
      continue;
    }
    const plain = !Array.isArray(change) && Object.getPrototypeOf(change) === Object.prototype;
    if (!plain || (Object.hasOwn(dst, key) && kindOf(dst[key], CONFIG_DEPTH) !== NESTED)) {
      return null;
    }
    parts.push(key, NESTED);
    for (const name of Object.keys(change)) {
      const value = change[name];
      if (name === PROTO || (value !== null && typeof value === "object")) {
        return null;
      }
      parts.push(name, value === null ? NULL : PRIMITIVE);
    }
    parts.push(END, END);
  }
  return JSON.stringify(parts);
};

// Recently used shapes, most recent first; returns the compiled copier for src's shape, if there is one yet.
export const makeShapeCache = () => {
  const entries = [];
  return (src, depth) => {
    const index = entries.findIndex(
      (entry) => entry.depth === depth && matchShape(src, depth, entry.shape, 0) === entry.shape.length,
    );
    let entry;
    if (index >= 0) {
      [entry] = entries.splice(index, 1);
    } else {
      const shape = shapeOf(src, depth);
      if (shape === null) {
        return null;
      }
      entry = { depth, shape, uses: 0, compiled: null };
    }
    entries.unshift(entry);
    entries.length = Math.min(entries.length, MAX_SHAPES);
    entry.uses += 1;
    if (entry.compiled === null && entry.uses >= COMPILE_AFTER) {
      entry.compiled = compileShape(src, depth);
      // Every kind but null is copied as the same kind (a primitive, a new array, a new object literal of the
      // same shape one level down, a new plain object), and nulls are left out: without nulls the copy has
      // exactly the source's shape.
      entry.compiled.copiesShape = !entry.shape.includes(NULL);
    }
    return entry.compiled;
  };
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

const isFreshTarget = (dst) =>
  dst !== null &&
  typeof dst === "object" &&
  Object.getPrototypeOf(dst) === Object.prototype &&
  Object.isExtensible(dst) &&
  Reflect.ownKeys(dst).length === 0;

const MAX_KNOWN_RESULTS = 32; // per source configuration: the corpus needs a handful, unique directives one each

const primitiveToken = (value) => {
  switch (typeof value) {
    case "string":
      return `s${value}`;
    case "number":
      return Object.is(value, -0) ? "n-0" : `n${value}`;
    case "boolean":
      return value ? "t" : "f";
    case "undefined":
      return "u";
    default:
      return value === null ? "z" : null;
  }
};

const isPlainData = (object, key) => {
  const descriptor = Object.getOwnPropertyDescriptor(object, key);
  return descriptor.enumerable && "value" in descriptor;
};

// Own properties that Object.keys, Object.entries and Object.assign all see the same way: enumerable data
// properties with string keys, and no others.
const hasOnlyPlainData = (object) =>
  Reflect.ownKeys(object).every((key) => typeof key === "string" && key !== PROTO && isPlainData(object, key));

// Appends the tokens of `value`, met at `level` of a directive (the directive itself is level 0), to tokens;
// false where the value is not one whose merge copies every part of it that the result keeps.
const directiveTokens = (value, level, tokens) => {
  const token = primitiveToken(value);
  if (token !== null) {
    tokens.push(token);
    return true;
  }
  if (typeof value !== "object" || level > 2) {
    return false;
  }
  if (Array.isArray(value)) {
    // an array without holes or other own properties than its items and length
    if (
      level === 0 ||
      Object.getPrototypeOf(value) !== Array.prototype ||
      Reflect.ownKeys(value).length !== value.length + 1
    ) {
      return false;
    }
    tokens.push("[");
    for (let index = 0; index < value.length; index++) {
      if (!Object.hasOwn(value, index) || !isPlainData(value, index) || primitiveToken(value[index]) === null) {
        return false;
      }
      tokens.push(primitiveToken(value[index]));
    }
    tokens.push("]");
    return true;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype || !hasOnlyPlainData(value)) {
    return false;
  }
  tokens.push("{");
  for (const key of Object.keys(value)) {
    tokens.push(`k${key}`);
    if (!directiveTokens(value[key], level + 1, tokens)) {
      return false;
    }
  }
  tokens.push("}");
  return true;
};

// A string that two lists of directives share exactly when they hold the same keys in the same order with the
// same values (Object.is) at every level; null for directives outside that form: plain objects whose levels 1
// and 2 hold primitives, plain objects and arrays of primitives, and whose level 3 holds primitives only. Those
// are exactly the values a depth-2 merge copies down to its primitives (arrays by their items, the plain
// objects of level 2 by Object.assign), so the merged result holds no object of the directives.
const directivesSignature = (directives) => {
  if (!Array.isArray(directives)) {
    return null;
  }
  const tokens = [];
  for (const directive of directives) {
    if (primitiveToken(directive) !== null || !directiveTokens(directive, 0, tokens)) {
      return null;
    }
  }
  return JSON.stringify(tokens);
};

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

/**
 * Returns `copyConfig(config)`, the same as `copy({}, config)`, with the shape matched once per config object
 * instead of once per call, `forgetConfig(config)`, to call after a config object was changed in place, and
 * `mergingIntoCopy(cfg, changes)`, for updateCurrentConfig to call before it merges the directives into cfg.
 * It serves the copies of the two objects the bundle keeps in place: currentConfig (getConfig, and
 * updateCurrentConfig when setConfig passes it) and siteConfig (updateCurrentConfig from reset and
 * addDirective). In the pinned bundle currentConfig is only ever replaced, by updateCurrentConfig with an
 * object it has just built (its containers down to the copied depth are its own), and never modified:
 * updateCurrentConfig's return value is ignored by all its callers, checkConfig only reads, and getConfig hands
 * out copies. siteConfig is replaced by setSiteConfig and changed in place only by setSiteConfig and
 * updateSiteConfig, which the worker patches to call forgetConfig. So the shape of a remembered object cannot
 * change between calls; the values are read afresh by every call.
 */
export function makeConfigCopier(copy, compiledFor, { verify = false, reference = copy } = {}) {
  // config object -> its compiled copier (or null: copied key by key); weak, as a diagram replaces
  // currentConfig several times
  const remembered = new WeakMap();
  let lastCopy = null; // the latest copy a compiled copier made here, and that copier
  let lastCopier = null;
  // copier -> (merge signature -> copier of the merged shape), and the latest merge whose shape is not known
  const transitions = new WeakMap();
  let pending = null;
  const build = (config) => {
    let compiled = remembered.get(config);
    if (compiled === undefined || compiled === null) {
      compiled = compiledFor(config, CONFIG_DEPTH);
      remembered.set(config, compiled);
      if (pending !== null && pending.config === config && compiled !== null) {
        if (!transitions.has(pending.from)) {
          transitions.set(pending.from, new Map());
        }
        transitions.get(pending.from).set(pending.signature, compiled);
        pending = null;
      }
    }
    if (compiled === null) {
      lastCopy = null;
      return copy({}, config);
    }
    lastCopy = compiled(config, dedupe);
    lastCopier = compiled;
    return lastCopy;
  };
  const forgetConfig = (config) => {
    remembered.delete(config);
    knownResults.delete(config);
  };
  // updateCurrentConfig's cfg is a copy of siteCfg, which becomes currentConfig after the directives are
  // merged into it: when the copy has its source's shape and the merge keeps it, cfg is remembered with that
  // copier, and its shape is never matched. Between the copy and the merge nothing else holds cfg (and no copy
  // is made here); after it only a theme directive changes cfg (its themeVariables), so none may be set.
  // A merge that changes the shape (the flowchart's init adds flowchart.arrowMarkerAbsolute to every
  // diagram's config) gives the shape its signature says: the first time, the merged cfg's shape is matched
  // when it is first copied, and its copier is kept for the next merge of that signature into that shape.
  const mergingIntoCopy = (config, changes) => {
    if (config !== lastCopy || !lastCopier.copiesShape || changes.theme) {
      return;
    }
    if (mergeKeepsShape(config, changes, CONFIG_DEPTH)) {
      remembered.set(config, lastCopier);
      return;
    }
    const signature = mergeSignature(config, changes);
    const merged = signature === null ? undefined : transitions.get(lastCopier)?.get(signature);
    if (merged !== undefined) {
      remembered.set(config, merged);
    } else if (signature !== null) {
      pending = { config, from: lastCopier, signature };
    }
  };
  // updateCurrentConfig(siteCfg, directives) builds a new currentConfig from siteCfg's contents, the sanitized
  // directives and, for a theme directive, configFromInitialize's contents and the theme's getThemeVariables
  // (which builds its object from its argument alone). When siteCfg is currentConfig or siteConfig (whose
  // contents stay as they are while the object does: see above), the directives have the same signature
  // (directivesSignature: the result then holds no object of theirs) and configFromInitialize is the same
  // object (only initialize replaces it, and nothing changes it in place), the result would hold the same
  // values in the same keys, and share the same objects below the copied depth: the earlier result is reused.
  // Its own containers are held by no one else (getConfig hands out copies, every caller of
  // updateCurrentConfig drops its return value) and never changed, like any currentConfig. Its other effects
  // stay: the directives are sanitized before knownConfig is asked, and checkConfig runs on a reused result.
  // source config -> (signature -> { config: the result, initConfig }), most recently used last
  const knownResults = new WeakMap();
  let asked = null; // what knownConfig looked up, for rememberConfig; a reused result, in the verification mode
  const knownConfig = (siteCfg, directives, sourceStays, initConfig) => {
    asked = null;
    const signature = sourceStays ? directivesSignature(directives) : null;
    if (signature === null) {
      return undefined;
    }
    if (!knownResults.has(siteCfg)) {
      knownResults.set(siteCfg, new Map());
    }
    const results = knownResults.get(siteCfg);
    const known = results.get(signature);
    asked = { results, signature, initConfig, reused: undefined };
    if (known === undefined || known.initConfig !== initConfig) {
      return undefined;
    }
    results.delete(signature);
    results.set(signature, known);
    if (!verify) {
      return known.config;
    }
    asked.reused = known.config;
    return undefined;
  };
  // Called with the new currentConfig built where knownConfig had none (or, verifying, with the one it
  // rebuilt): returns the object to keep as currentConfig.
  const rememberConfig = (config) => {
    const lookup = asked;
    asked = null;
    if (lookup === null) {
      return config;
    }
    if (lookup.reused !== undefined) {
      sameCopy(lookup.reused, config, undefined, CONFIG_DEPTH, "");
      return lookup.reused;
    }
    lookup.results.set(lookup.signature, { config, initConfig: lookup.initConfig });
    if (lookup.results.size > MAX_KNOWN_RESULTS) {
      lookup.results.delete(lookup.results.keys().next().value);
    }
    return config;
  };
  if (!verify) {
    return { copyConfig: build, forgetConfig, mergingIntoCopy, knownConfig, rememberConfig };
  }
  const copyConfig = (config) => {
    const result = build(config);
    sameCopy(result, reference({}, config), config, CONFIG_DEPTH, "");
    return result;
  };
  return { copyConfig, forgetConfig, mergingIntoCopy, knownConfig, rememberConfig };
}

/**
 * Returns `flowConfig(config, getConfig)`, for FlowDB's `this.config = getConfig()` (its constructor, clear and
 * every addVertex with a label): the copy made here of the same config object, for any db, else a new copy.
 * The copy is only read: FlowDB passes it to sanitizeText (which reads it and gives its dompurifyConfig to
 * DOMPurify, which clones that before use, writing only to holes of arrays, and copies have none), to
 * formatUrl, and reads maxEdges; nothing else in the bundle reads a db's config. currentConfig is never
 * changed in place (see makeConfigCopier) and the levels below the copied depth are shared by every copy, so
 * a new copy would be equal, level by level, to the one kept. The verification mode makes the new copy and
 * compares them.
 */
export function makeFlowConfigReuse({ verify = false } = {}) {
  const copies = new WeakMap(); // config -> the copy made of it
  return (config, getConfig) => {
    const kept = copies.get(config);
    if (kept === undefined) {
      const copy = getConfig();
      copies.set(config, copy);
      return copy;
    }
    if (verify) {
      sameCopy(kept, getConfig(), config, CONFIG_DEPTH, "");
    }
    return kept;
  };
}

const isOwnEnumerable = (object, key) =>
  Object.hasOwn(object, key) && Object.prototype.propertyIsEnumerable.call(object, key);

// The flowchart diagrams' init as the bundle holds it once the worker's flowInitConfig and flowInitMarkerConfig
// patches are applied (an init with any other text is given a whole copy, as before).
export const FLOW_INIT_SOURCE = [
  "(cnf) => {",
  "          if (!cnf.flowchart) {",
  "            cnf.flowchart = {};",
  "          }",
  "          const layout7 = getUserDefinedConfig().layout ?? defaultLayout ?? cnf.layout;",
  "          if (layout7) {",
  "            updateCurrentConfig(currentConfig, [{ layout: layout7 }]);",
  "          }",
  "          cnf.flowchart.arrowMarkerAbsolute = cnf.arrowMarkerAbsolute;",
  "          updateCurrentConfig(currentConfig, [{ flowchart: { arrowMarkerAbsolute: cnf.arrowMarkerAbsolute } }]);",
  "        }",
].join("\n");

// The sections detectType's detectors read (their defaultRenderer).
const DETECTOR_SECTIONS = ["flowchart", "class", "state"];

const isPlainObject = (value) =>
  value !== null && typeof value === "object" && !Array.isArray(value) && Object.getPrototypeOf(value) === Object.prototype;

// Whether getConfig()'s copy of `config` holds the same value under `key` as `config` itself: an absent key (both
// read Object.prototype's, config being plain), or an own enumerable non-null value that is not an object.
const sameInCopy = (config, key) => {
  if (!Object.hasOwn(config, key)) {
    return true;
  }
  const value = config[key];
  return isOwnEnumerable(config, key) && value !== null && typeof value !== "object";
};

/**
 * `detectionConfig(base)` and `initConfig(init, config)`, for Diagram.fromText, which copies the whole
 * configuration (getConfig) for its two readers and then drops the copy:
 * - detectType's detectors (every one in the bundle, inline ones included) read at most flowchart, class and
 *   state's defaultRenderer, and two write the top-level layout ("elk"). A shallow view of `base` (a new object
 *   with base's own enumerable entries) reads the same: where a copy leaves out or copies a value the view
 *   shares, those reads are compared with strings only, and nothing is written below the top level. (A base
 *   with an own `__proto__` entry, or a detector's section that is not a plain object, absent or null, gets the
 *   copy, as before.)
 * - the diagram's init gets `initConfig(init, view)`: for the flowchart's init (FLOW_INIT_SOURCE), which reads
 *   cnf.flowchart's truthiness, cnf.layout and cnf.arrowMarkerAbsolute and writes only cnf.flowchart (when
 *   absent) and cnf.flowchart.arrowMarkerAbsolute, the view itself with a flowchart object of its own, when
 *   those three read as they would in a copy (`base` plain, its flowchart absent or a plain object, the other
 *   two `sameInCopy`); for any other init, getConfig()'s copy of `base` (currentConfig is only ever replaced,
 *   never changed in place, so base copied now is what was copied then) with the detectors' top-level writes
 *   made on it again. A config that is not a view (the detection patch not applied) is passed on as it is.
 * With `verify`, the flowchart's three reads are also taken from the copy and compared.
 */
export function makeDiagramConfig(copyConfig, { verify = false } = {}) {
  const bases = new WeakMap(); // view -> the configuration it shows
  const flowInits = new WeakMap(); // init -> whether it is the flowchart's
  const isFlowInit = (init) => {
    let known = flowInits.get(init);
    if (known === undefined) {
      known = String(init) === FLOW_INIT_SOURCE;
      flowInits.set(init, known);
    }
    return known;
  };
  const copyWithWrites = (base, view) => {
    const copy = copyConfig(base);
    for (const key of Object.keys(view)) {
      if (!Object.hasOwn(base, key) || !Object.is(view[key], base[key])) {
        copy[key] = view[key];
      }
    }
    return copy;
  };
  const detectionConfig = (base) => {
    // The copy, as before, for an own `__proto__` entry (assigning it would set the view's prototype) and for a
    // detector's section that is neither absent, null nor a plain object (a copy of an array, say, keeps only
    // its elements).
    const odd = (key) => Object.hasOwn(base, key) && base[key] !== null && !isPlainObject(base[key]);
    if (Object.hasOwn(base, PROTO) || DETECTOR_SECTIONS.some(odd)) {
      return copyConfig(base);
    }
    const view = Object.assign({}, base);
    bases.set(view, base);
    return view;
  };
  const initConfig = (init, config) => {
    const base = bases.get(config);
    if (base === undefined) {
      return config;
    }
    const readsSame =
      isPlainObject(base) &&
      (!Object.hasOwn(base, "flowchart") || (isOwnEnumerable(base, "flowchart") && isPlainObject(base.flowchart))) &&
      sameInCopy(base, "layout") &&
      sameInCopy(base, "arrowMarkerAbsolute");
    if (!isFlowInit(init) || !readsSame) {
      return copyWithWrites(base, config);
    }
    if (verify) {
      const copy = copyWithWrites(base, config);
      for (const [name, seen, copied] of [
        ["flowchart", Boolean(config.flowchart), Boolean(copy.flowchart)],
        ["layout", config.layout, copy.layout],
        ["arrowMarkerAbsolute", config.arrowMarkerAbsolute, copy.arrowMarkerAbsolute],
      ]) {
        if (!Object.is(seen, copied)) {
          throw new Error(`fromText's configuration view differs from the copy at .${name}`);
        }
      }
    }
    if (config.flowchart !== undefined) {
      config.flowchart = {};
    }
    return config;
  };
  return { detectionConfig, initConfig };
}

/**
 * `readConfig(config, key, name, copied)` is `copied()?.[name]`, where `copied()` returns getConfig()'s copy of
 * `config`'s `key` entry (possibly with a default for a missing one), read without copying when that provably
 * gives the same value. A depth-2 copy of config holds, for an own enumerable `key` whose value is a plain
 * object (prototype Object.prototype, not an array), a new plain object with that object's own enumerable
 * keys, each value copied by its kind: a primitive (or function) is the same value, a null is left out, an
 * object or array is a new one. So when `name` is an own enumerable key of it with a non-null primitive
 * value, the copy has that very value; when `name` is not an own key, neither object has it and both read
 * Object.prototype's. Anything else (a null, an object value, a non-plain container) is read from a copy.
 * Skipping a copy skips no side effect: assignWithDepth and the fast copies only build the new object.
 */
export const readConfig = (config, key, name, copied) => {
  const level = isOwnEnumerable(config, key) ? config[key] : undefined;
  return isPlainObject(level) && name !== PROTO && sameInCopy(level, name) ? level[name] : copied()?.[name];
};

/**
 * `readTopConfig(config, name, copied)` is `copied()[name]`, where `copied()` returns getConfig()'s copy of
 * `config` itself: that copy treats config's own entries as readConfig says a copy treats an entry's, so a
 * top-level value is read as the one entry of an object holding config.
 */
export const readTopConfig = (config, name, copied) => readConfig({ config }, "config", name, copied);

/**
 * Returns a drop-in replacement for mermaid's assignWithDepth. `reference` is an untouched copy of the
 * original (whose recursion does not come back here), used by the verification mode.
 */
export function wrapAssignWithDepth(original, compiledFor, { verify = false, reference = original } = {}) {
  if (hasForeignSetters()) {
    return original;
  }
  return (dst, src, options) => {
    const depth = fastDepth(options);
    if (
      depth === undefined ||
      src === null ||
      typeof src !== "object" ||
      Array.isArray(src) ||
      !isFreshTarget(dst)
    ) {
      return original(dst, src, options);
    }
    let copy;
    if (depth <= 0) {
      copy = Object.assign(dst, src);
    } else {
      const compiled = compiledFor(src, depth);
      copy = compiled === null ? copyInto(dst, src, depth) : Object.assign(dst, compiled(src, dedupe));
    }
    if (verify) {
      sameCopy(copy, reference({}, src, options), src, depth, "");
    }
    return copy;
  };
}
