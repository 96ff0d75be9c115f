// Long-lived mermaid syntax judge: one JSON object per line in, one per line out, in order.
//
// In:  {"id": 7, "code": "flowchart TD\n  A --> B"}
// Out: {"ready": true, "version": "11.17.2", "patches": {"fastCopy": true, ...}}   (once, after start-up)
//      {"id": 7, "ok": true, "type": "flowchart-v2"}
//      {"id": 8, "ok": false, "error": "Parse error on line 2:\n...", "line": 2}
//      {"id": 9, "ok": false, "error": "Invalid date:30s", "line": null, "type": "gantt", "stage": "render"}
//
// The verdict is exactly what the pinned package's mermaid.parse() says. mermaid is loaded from its own
// single-file bundle (dist/mermaid.js) rather than the ESM build: one compile instead of resolving several
// hundred modules, so a worker is ready in a fraction of a second. Before the bundle runs, small patches are
// made to its text, each at an anchor that must occur exactly as often as expected (otherwise it is skipped and
// reported):
// - fastCopy, configCopy, siteConfigChanged, siteConfigCopy, directivesMerge: route mermaid's configuration
//   copies through fast-copy.mjs, which builds the same result faster (see there for why it is exact);
// - configReuse, sanitizeOnce, rememberConfig: updateCurrentConfig (run by every parse's reset and
//   addDirective, and by the flowchart's init) reuses its earlier result for the same source configuration and
//   directives of the same contents instead of building it again (fast-copy.mjs, knownConfig, says why that
//   is exact). The directives are sanitized before that lookup rather than each before its merge: sanitize
//   reads only its directive (and siteConfig.secure), the merges and the copy write only objects they create,
//   and sanitize leaves nothing for a second run to do, so every merge sees the same directives;
// - flowConfig: the flowchart databases share one copy of the configuration while it is the same object,
//   instead of copying it for every database and again for every labelled node (fast-copy.mjs says why that
//   is exact);
// - subGraphItems: addSubGraph's de-duplication of a subgraph's items uses a Set where that gives the same
//   list (uniqueSubgraphItems says when);
// - subGraphConfig, sequenceWrapConfig, sequenceDbWrapConfig: addSubGraph (flowchart.inheritDir), the sequence
//   database's autoWrap (sequence.wrap), run for every subgraph and message, and its constructor (wrap), run for
//   every sequence diagram, read one value of a getConfig() copy they then drop; readConfig and readTopConfig
//   (fast-copy.mjs) read it from currentConfig where the copy provably holds the same value, and copy as
//   before otherwise;
// - flowInitConfig, flowInitMarkerConfig: the flowchart's init calls setConfig, which is updateCurrentConfig
//   followed by a getConfig() copy as its return value; init drops that value, so it calls updateCurrentConfig
//   itself (getConfig has no other effect);
// - fromTextDetection, fromTextInit: Diagram.fromText copied the whole configuration for detectType and the
//   diagram's init; detection gets a shallow view of currentConfig, and the init a copy made then, except the
//   flowchart's init, which gets the view with a flowchart of its own (fast-copy.mjs, makeDiagramConfig, says
//   why both are exact);
// - entitySemicolons: encodeEntities' two passes that drop a `style` or `classDef` line's last semicolon
//   (backtracking regexes, tried at every split of every such line) walk each line once (entities.mjs says why
//   that drops the same semicolons);
// - tagQuotes: cleanupText, run on every diagram, rewrites each HTML tag's `="…"` attributes as `='…'` through a
//   callback per tag; a text without `="` has no attribute to rewrite (each tag comes back as it matched), so
//   the pass runs only where `="` occurs, and the line-ending pass only where a CR does;
// - parserInput: records the text handed to the diagram's parser, to map its "line N" back to the code;
// - popInPlace: every jison parser of the bundle (18, one template) copied its three stacks on each reduction
//   (`stack = stack.slice(0, -n)`), quadratic in the length of a diagram whose statements nest right-recursively;
//   truncating them in place leaves the same elements. The old arrays are never kept: the grammar actions read
//   `$$[$0]` entries, never the stack itself. They are truncated with pop(), which V8 runs inline, rather than
//   by assigning `length` (a generic builtin call, most of this patch's cost); `len` never exceeds what the
//   stacks hold (a reduction pops the symbols its rule just matched), so no pop() meets an empty stack.
// - actionCall: every jison parser called each grammar action with `performAction.apply(yyval, [...].concat(args))`,
//   where args holds the parse call's arguments after the input: none, as every caller passes the text
//   alone. For an empty args the action is called with the same seven arguments directly; concat (V8's slow
//   generic path here) was most of the parse loop's own time. Other args take the original expression.
// - lexerFilter: every jison lexer's `next` tries only the rules that can match at the current input
//   (lexer-filter.mjs), in their order, instead of every rule of the condition.
// - parsedDiagram, dagreLayout: keep the diagram mermaid.parse built and expose the dagre layout's graph
//   building (after clearing the layout state, as mermaid.render does first), and the two configuration
//   values the layout graph's edges take as getConfig() gives them (readConfig says when it reads them in
//   place), for the render stage below.
// Render stage: some diagrams parse but throw when mermaid.render draws them (GitHub shows an error box).
// Where the throwing step needs no browser it is run here on the parsed diagram, through mermaid's own code:
// the gantt database's task list (dates, `after` references) and the flowchart's layout graph (subgraph
// parents, self-loops, edge data), unless layoutGraphCannotThrow proves it cannot throw. Such a diagram is
// reported with ok false, its parsed type and stage "render".
// Results are written synchronously right after each diagram, so the pool knows which diagram is in flight.
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import vm from "node:vm";
import {
  FLOW_INIT_SOURCE,
  makeConfigCopier,
  makeDiagramConfig,
  makeFlowConfigReuse,
  makeShapeCache,
  readConfig,
  readTopConfig,
  wrapAssignWithDepth,
} from "./fast-copy.mjs";
import { makeLexerFilter } from "./lexer-filter.mjs";
import { dropLastSemicolon } from "./entities.mjs";
import { uniqueSubgraphItems } from "./subgraph-items.mjs";
import { WARM_UP } from "./warm-up.mjs";

// Parsing is batch work: it runs below the webhook server's priority, so a pull request with thousands of
// diagrams never delays the server's answers on a machine with few cores. Where lowering is not permitted, the
// worker runs at the priority it was given.
try {
  os.setPriority(os.constants.priority.PRIORITY_BELOW_NORMAL);
} catch {
  // a sandbox that forbids setpriority: parse at the given priority rather than not at all
}

const require = createRequire(import.meta.url);
// linkedom's CommonJS build: Node loads its hundred modules in about half the time it takes for the ES modules.
const { parseHTML } = require("linkedom");
const BUNDLE = require.resolve("mermaid/dist/mermaid.js");
const VERSION = JSON.parse(fs.readFileSync(require.resolve("mermaid/package.json"), "utf8")).version;
// The patched bundle and V8's code cache of it, in one file beside the installed packages (node_modules/.cache,
// where tools keep what they derive from them) unless ATLAS_MERMAID_CODE_CACHE_DIR names another directory
// (empty: none). Compiling the 8 MB bundle was about a third of a worker's start-up and patching its text a
// fifth of the rest; from the cache V8 reads the compiled functions instead (the ones the worker's last run had
// compiled included), and the text comes patched.
const CODE_CACHE_DIR =
  process.env.ATLAS_MERMAID_CODE_CACHE_DIR ??
  path.join(path.dirname(path.dirname(require.resolve("mermaid/package.json"))), ".cache", "atlas-bot");
const CODE_CACHE_PREFIX = "mermaid-";
const CODE_CACHE_SUFFIX = ".v8-code-cache";
// How long the worker that writes the cache may spend on the warm-up first (0.6–0.9 s on the development machine).
const WARM_UP_MS = 2000;
// The worker's own modules: the patches and what they install are defined there.
const WORKER_DIR = path.dirname(fileURLToPath(import.meta.url));
const TEST_HOOKS = process.env.ATLAS_MERMAID_TEST_HOOKS === "1";
const VERIFY_COPY = process.env.ATLAS_MERMAID_VERIFY_COPY === "1";

const COPY_DEFINITION_START = "assignWithDepth = /* @__PURE__ */ __name((dst, src, { depth = 2 } = {}) => {";
const COPY_DEFINITION_END = '}, "assignWithDepth");';
const POP_BY_COPY = `                  if (len) {
                    stack = stack.slice(0, -1 * len * 2);
                    vstack = vstack.slice(0, -1 * len);
                    lstack = lstack.slice(0, -1 * len);
                  }
`;
const POP_IN_PLACE = `                  for (let popped = 0; popped < len; popped++) {
                    stack.pop();
                    stack.pop();
                    vstack.pop();
                    lstack.pop();
                  }
`;
const JISON_PARSERS = 18;
const ACTION_BY_CONCAT = `                  r2 = this.performAction.apply(yyval, [
                    yytext,
                    yyleng,
                    yylineno,
                    sharedState.yy,
                    action[1],
                    vstack,
                    lstack
                  ].concat(args));
`;
// The same statement, calling the action directly when there are no extra arguments.
const ACTION_BY_CALL = ACTION_BY_CONCAT.replace(
  "r2 = this.performAction.apply(yyval, [",
  `r2 = args.length === 0
                    ? this.performAction.call(yyval, yytext, yyleng, yylineno, sharedState.yy, action[1], vstack, lstack)
                    : this.performAction.apply(yyval, [`,
);
const ALL_RULES = "              var rules2 = this._currentRules();\n";
const CANDIDATE_RULES =
  "              var rules2 = globalThis.__atlasBot.candidateRules(this.rules, this._currentRules(), this._input, this);\n";
// Each patch replaces every occurrence of its anchor by its replacement, when the anchor occurs exactly the
// expected number of times in the bundle (once unless a third element says otherwise).
const PATCHES = {
  fastCopy: [
    "      assignWithDepth_default = assignWithDepth;\n",
    "      assignWithDepth_default = assignWithDepth;\n" +
      "      assignWithDepth = assignWithDepth_default = globalThis.__atlasBot.wrapCopy(assignWithDepth);\n",
  ],
  configCopy: [
    "        return assignWithDepth_default({}, currentConfig);\n",
    "        return globalThis.__atlasBot.copyConfig(currentConfig);\n",
  ],
  siteConfigChanged: [
    "        siteConfig = assignWithDepth_default(siteConfig, conf5);\n",
    "        siteConfig = assignWithDepth_default(siteConfig, conf5);\n" +
      "        globalThis.__atlasBot.forgetConfig(siteConfig);\n",
    2,
  ],
  siteConfigCopy: [
    "        let cfg = assignWithDepth_default({}, siteCfg);\n",
    "        let cfg = siteCfg === currentConfig || siteCfg === siteConfig ? globalThis.__atlasBot.copyConfig(siteCfg)" +
      " : assignWithDepth_default({}, siteCfg);\n",
  ],
  directivesMerge: [
    "        cfg = assignWithDepth_default(cfg, sumOfDirectives);\n",
    "        globalThis.__atlasBot.mergingIntoCopy(cfg, sumOfDirectives);\n" +
      "        cfg = assignWithDepth_default(cfg, sumOfDirectives);\n",
  ],
  configReuse: [
    "      updateCurrentConfig = /* @__PURE__ */ __name((siteCfg, _directives) => {\n",
    "      updateCurrentConfig = /* @__PURE__ */ __name((siteCfg, _directives) => {\n" +
      "        for (const d3 of _directives) {\n" +
      "          sanitize(d3);\n" +
      "        }\n" +
      "        const knownConfig = globalThis.__atlasBot.knownConfig(\n" +
      "          siteCfg, _directives, siteCfg === currentConfig || siteCfg === siteConfig, configFromInitialize);\n" +
      "        if (knownConfig !== undefined) {\n" +
      "          currentConfig = knownConfig;\n" +
      "          checkConfig(currentConfig);\n" +
      "          return currentConfig;\n" +
      "        }\n",
  ],
  sanitizeOnce: [
    "          sanitize(d3);\n          sumOfDirectives = assignWithDepth_default(sumOfDirectives, d3);\n",
    "          sumOfDirectives = assignWithDepth_default(sumOfDirectives, d3);\n",
  ],
  rememberConfig: [
    "        currentConfig = cfg;\n        checkConfig(currentConfig);\n",
    "        currentConfig = globalThis.__atlasBot.rememberConfig(cfg);\n        checkConfig(currentConfig);\n",
  ],
  flowConfig: [
    "this.config = getConfig2();\n",
    "this.config = globalThis.__atlasBot.flowConfig(currentConfig, getConfig2);\n",
    3,
  ],
  subGraphItems: [
    "          const uniq2 = /* @__PURE__ */ __name((a2) => {\n" +
      "            const prims = { boolean: {}, number: {}, string: {} };\n",
    "          const uniq2 = /* @__PURE__ */ __name((a2) => {\n" +
      "            const unique = globalThis.__atlasBot.uniqueSubgraphItems(a2);\n" +
      "            if (unique !== null) {\n" +
      "              return unique;\n" +
      "            }\n" +
      "            const prims = { boolean: {}, number: {}, string: {} };\n",
  ],
  subGraphConfig: [
    "          const flowchartConfig = getConfig2().flowchart ?? {};\n",
    "          const flowchartConfig = {\n" +
      '            inheritDir: globalThis.__atlasBot.readConfig(\n' +
      '              currentConfig, "flowchart", "inheritDir", () => getConfig2().flowchart ?? {})\n' +
      "          };\n",
  ],
  sequenceWrapConfig: [
    "          return getConfig2().sequence?.wrap ?? false;\n",
    '          return globalThis.__atlasBot.readConfig(currentConfig, "sequence", "wrap", () => getConfig2().sequence)' +
      " ?? false;\n",
  ],
  sequenceDbWrapConfig: [
    "          this.setWrap(getConfig2().wrap);\n",
    '          this.setWrap(globalThis.__atlasBot.readTopConfig(currentConfig, "wrap", () => getConfig2()));\n',
  ],
  flowInitConfig: [
    "            setConfig2({ layout: layout7 });\n",
    "            updateCurrentConfig(currentConfig, [{ layout: layout7 }]);\n",
  ],
  flowInitMarkerConfig: [
    "          setConfig2({ flowchart: { arrowMarkerAbsolute: cnf.arrowMarkerAbsolute } });\n",
    "          updateCurrentConfig(currentConfig, [{ flowchart: { arrowMarkerAbsolute: cnf.arrowMarkerAbsolute } }]);\n",
  ],
  fromTextInit: [
    "      init3?.(config3);\n",
    "      init3?.(globalThis.__atlasBot.initConfig(init3, config3));\n",
  ],
  fromTextDetection: [
    "      const config3 = getConfig();\n      const type3 = detectType(text4, config3);\n",
    "      const config3 = globalThis.__atlasBot.detectionConfig(currentConfig);\n" +
      "      const type3 = detectType(text4, config3);\n",
  ],
  entitySemicolons: [
    "        txt = txt.replace(/style.*:\\S*#.*;/g, function(s2) {\n" +
      "          return s2.substring(0, s2.length - 1);\n" +
      "        });\n" +
      "        txt = txt.replace(/classDef.*:\\S*#.*;/g, function(s2) {\n" +
      "          return s2.substring(0, s2.length - 1);\n" +
      "        });\n",
    '        txt = globalThis.__atlasBot.dropLastSemicolon(txt, "style");\n' +
      '        txt = globalThis.__atlasBot.dropLastSemicolon(txt, "classDef");\n',
  ],
  tagQuotes: [
    '    return code.replace(/\\r\\n?/g, "\\n").replace(\n',
    '    code = code.includes("\\r") ? code.replace(/\\r\\n?/g, "\\n") : code;\n' +
      "    return !code.includes('=\"') ? code : code.replace(\n",
  ],
  parserInput: [
    '      text4 = encodeEntities(text4) + "\\n";\n',
    '      text4 = encodeEntities(text4) + "\\n";\n' +
      "      globalThis.__atlasBot.parserInput = { type: type3, text: text4 };\n",
  ],
  popInPlace: [POP_BY_COPY, POP_IN_PLACE, JISON_PARSERS],
  actionCall: [ACTION_BY_CONCAT, ACTION_BY_CALL, JISON_PARSERS],
  lexerFilter: [ALL_RULES, CANDIDATE_RULES, JISON_PARSERS],
  parsedDiagram: [
    "      const diagram38 = await getDiagramFromText(code);\n",
    "      const diagram38 = await getDiagramFromText(code);\n" +
      "      globalThis.__atlasBot.parsedDiagram = diagram38;\n",
  ],
  dagreLayout: [
    "  var dagre_exports = {};\n",
    "  var dagre_exports = {};\n" +
      "  globalThis.__atlasBot.dagreLayout = () => (init_dagre2(), clearLayoutRenderState(), dagre_exports);\n" +
      "  globalThis.__atlasBot.layoutConfig = () => ({\n" +
      '    look: globalThis.__atlasBot.readTopConfig(currentConfig, "look", () => getConfig2()),\n' +
      '    curve: globalThis.__atlasBot.readConfig(currentConfig, "flowchart", "curve", () => getConfig2().flowchart),\n' +
      "  });\n",
  ],
};

// The browser-free steps of mermaid.render that can throw on a diagram mermaid.parse accepted, by diagram type.
const RENDER_STEPS = [
  [(type) => type === "gantt", (diagram) => diagram.db.getTasks()],
  [
    (type) => type.startsWith("flowchart"),
    (diagram, bot) => {
      if (subgraphParentsMayCycle(diagram.db) && !layoutGraphCannotThrow(diagram.db, bot.layoutConfig())) {
        bot.dagreLayout().prepareLayoutForDagre(diagram.db.getData());
      }
    },
  ],
];

// The layout graph's parents can only form a cycle when an id is both a subgraph and a node (or two
// subgraphs), or subgraphs nest; otherwise every parent is a subgraph without a parent of its own.
function subgraphParentsMayCycle(db) {
  const subGraphs = db.getSubGraphs();
  const ids = new Set(subGraphs.map((subGraph) => subGraph.id));
  const vertices = db.getVertices();
  return (
    ids.size !== subGraphs.length ||
    subGraphs.some((subGraph) => vertices.has(subGraph.id) || subGraph.nodes.some((node) => ids.has(node)))
  );
}

// Deeper subgraph nesting is left to the layout graph itself: its helpers recurse once per level.
const MAX_SUBGRAPH_DEPTH = 64;
const isPrimitive = (value) => value === null || ["undefined", "boolean", "number", "string"].includes(typeof value);
// graphlib's root is the node "\0", and it keys an edge by its ends and name joined with "\x01".
const GRAPH_SEPARATORS = /[\0\x01]/;
const isPlainId = (id) =>
  typeof id === "string" && id !== "" && !(id in Object.prototype) && !GRAPH_SEPARATORS.test(id);

// Building the layout graph (getData, then prepareLayoutForDagre) costs about as much as parsing. It
// provably cannot throw when all of these hold, so it is skipped then:
// - no subgraph is collapsed: getData then hides nothing and every node's parentId is the first subgraph
//   listing it, the relation built below;
// - that relation has no cycle: every setParent(id, parentId) then walks up parents that are already set
//   by the same relation, so it never meets id ("Setting X as parent of X would create a cycle");
// - every id is a non-empty string that names no Object.prototype member and holds no graphlib separator
//   (nor does an edge's id): graphlib keeps nodes and edges in plain objects under such keys, and
//   adjustClustersAndEdges takes a falsy child id for "none" (its anchor would have no parent);
// - every self-loop is on a node or subgraph (its node's parentId is read from the graph) whose two helper
//   nodes are not subgraphs (they could be their own ancestors);
// - every edge property taken from edge metadata, linkStyle or the configuration is a primitive:
//   adjustClustersAndEdges JSON.stringify-s every edge (for a log call), which throws on a cycle (YAML
//   anchors build one), and self-loops are structuredClone-d;
// - subgraphs nest at most MAX_SUBGRAPH_DEPTH deep.
// The rest of adjustClustersAndEdges only looks up clusters it has registered for every node with children,
// and anchors an edge on a descendant whose parent is such a cluster, so it cannot throw on such a graph.
function layoutGraphCannotThrow(db, { look, curve }) {
  for (const subGraph of db.subGraphLookup.values()) {
    if (subGraph.metadata?.view === "collapsed") {
      return false;
    }
  }
  const subGraphs = db.getSubGraphs();
  const parentOf = new Map();
  for (let i = subGraphs.length - 1; i >= 0; i--) {
    if (!isPlainId(subGraphs[i].id)) {
      return false;
    }
    for (const id of subGraphs[i].nodes) {
      parentOf.set(id, subGraphs[i].id);
    }
  }
  for (const { id } of subGraphs) {
    let depth = 0;
    for (let parent = parentOf.get(id); parent !== undefined; parent = parentOf.get(parent)) {
      if (parent === id || ++depth > MAX_SUBGRAPH_DEPTH) {
        return false;
      }
    }
  }
  const vertices = db.getVertices();
  for (const id of vertices.keys()) {
    if (!isPlainId(id)) {
      return false;
    }
  }
  const edges = db.getEdges();
  if (!isPrimitive(look) || !isPrimitive(curve) || !isPrimitive(edges.defaultInterpolate)) {
    return false;
  }
  const isSubGraph = (id) => db.subGraphLookup.has(id);
  return edges.every(
    ({ id, start, end, animate, animation, interpolate }) =>
      isPlainId(start) &&
      isPlainId(end) &&
      !GRAPH_SEPARATORS.test(id) &&
      isPrimitive(animate) &&
      isPrimitive(animation) &&
      isPrimitive(interpolate) &&
      (start !== end ||
        ((vertices.has(start) || isSubGraph(start)) &&
          !isSubGraph(`${start}---${start}---1`) &&
          !isSubGraph(`${start}---${start}---2`))),
  );
}
// "Parse error on line 3:" (jison), "Lexical error on line 3." (jison), "Parse error on line 3, column 5" (langium).
const BLAMED_LINE = /\b(?:Parse|Lexical|Lexer) error on line (\d+)/;

// Diagram parsers that rewrite their input before the grammar sees it; line numbers refer to the rewritten text.
const PARSER_REWRITES = [
  [(type) => type.startsWith("flowchart"), (text) => text.replace(/}\s*\n/g, "}\n")],
  [
    (type) => type === "sankey",
    (text) => text.replaceAll(/^[^\S\n\r]+|[^\S\n\r]+$/g, "").replaceAll(/([\n\r])+/g, "\n").trim(),
  ],
];

// Every anchor is looked for in the unpatched text, and all replacements are made in one pass: joining the
// 8 MB text once rather than once per patch saves most of the patching's start-up time. A patch whose anchor
// overlaps an occurrence of an earlier patch's is skipped, so each replaces mermaid's own text.
function patchBundle(source) {
  const applied = {};
  const skipped = []; // what the worker says on stderr about each patch it runs without
  const edits = []; // [start, end, replacement] of every occurrence of an applied patch's anchor
  for (const [name, [anchor, replacement, expected = 1]] of Object.entries(PATCHES)) {
    const found = [];
    for (let at = source.indexOf(anchor); at >= 0; at = source.indexOf(anchor, at + anchor.length)) {
      found.push([at, at + anchor.length, replacement]);
    }
    const overlaps = found.some(([start, end]) => edits.some(([from, to]) => start < to && from < end));
    // Config copies are routed to bot.copyConfig, which exists only with the fast copy installed; the site
    // config is copied through it only when its changes are reported.
    const needs = {
      configCopy: applied.fastCopy,
      siteConfigCopy: applied.configCopy && applied.siteConfigChanged,
      directivesMerge: applied.siteConfigCopy,
      // reused results are forgotten when siteConfig changes in place; the directives are sanitized once only
      // where the lookup sanitizes them first
      configReuse: applied.configCopy && applied.siteConfigChanged,
      sanitizeOnce: applied.configReuse,
      rememberConfig: applied.configReuse,
      // the view detection gets must reach the init only through initConfig, which copies through copyConfig
      fromTextDetection: applied.configCopy && applied.fromTextInit,
    };
    applied[name] = found.length === expected && !overlaps && (needs[name] ?? true);
    if (applied[name]) {
      edits.push(...found);
    } else {
      const reason =
        found.length !== expected
          ? "anchor not found as often as expected"
          : overlaps
            ? "anchor overlaps another patch's"
            : "a patch it needs is not applied";
      skipped.push(`atlas-bot mermaid worker: running without the ${name} patch (${reason})\n`);
    }
  }
  edits.sort((a, b) => a[0] - b[0]);
  const pieces = [];
  let copied = 0;
  for (const [start, end, replacement] of edits) {
    pieces.push(source.slice(copied, start), replacement);
    copied = end;
  }
  pieces.push(source.slice(copied));
  source = pieces.join("");
  // Not a patch: whether the flowchart's init reads as makeDiagramConfig knows it (else it gets a whole copy).
  applied.flowInitView = applied.fromTextDetection && source.split(FLOW_INIT_SOURCE).length === 2;
  return { source, applied, skipped };
}

// What the fastCopy patch calls: mermaid's assignWithDepth wrapped, and the configuration copies built on it.
function installCopy(bot, { source, applied }) {
  let reference;
  if (VERIFY_COPY && applied.fastCopy) {
    // A private copy of the original whose recursion stays inside itself, to compare against.
    const start = source.indexOf(COPY_DEFINITION_START);
    const end = source.indexOf(COPY_DEFINITION_END, start) + COPY_DEFINITION_END.length;
    const definition = source.slice(start, end);
    reference = vm.runInThisContext(`(() => { const __name = (fn) => fn; let ${definition} return assignWithDepth; })()`);
  }
  bot.wrapCopy = (original) => {
    const compiledFor = makeShapeCache();
    const copy = wrapAssignWithDepth(original, compiledFor, { verify: VERIFY_COPY, reference });
    Object.assign(bot, makeConfigCopier(copy, compiledFor, { verify: VERIFY_COPY, reference }));
    return copy;
  };
}

function loadMermaid() {
  // stdout carries the protocol only: anything mermaid or its dependencies print goes to stderr.
  for (const method of ["log", "info", "debug", "trace"]) {
    console[method] = console.error;
  }
  const { window } = parseHTML("<!doctype html><html><head></head><body></body></html>");
  // mermaid sanitises labels with DOMPurify, which needs a window and a document; nothing is rendered.
  globalThis.window = window;
  globalThis.document = window.document;
  // A sequence diagram's box colour is checked with window.CSS.supports, or with `new Option().style` where
  // there is no window.CSS; linkedom has neither, so every diagram with a box failed ("Option is not defined")
  // where a browser draws it. The answer never changes the verdict (a word that is not a colour only becomes
  // part of the box's title), so every colour is accepted.
  window.CSS = { supports: () => true };
  const bot = {
    parserInput: null,
    candidateRules: makeLexerFilter(),
    flowConfig: makeFlowConfigReuse({ verify: VERIFY_COPY }),
    readConfig,
    readTopConfig,
    uniqueSubgraphItems,
    dropLastSemicolon,
  };
  Object.assign(bot, makeDiagramConfig((config) => bot.copyConfig(config), { verify: VERIFY_COPY }));
  globalThis.__atlasBot = bot;
  const codeCache = CODE_CACHE_DIR === "" ? null : codeCacheFile();
  const cached = codeCache === null ? undefined : readCodeCache(codeCache);
  const patched = cached ?? patchBundle(fs.readFileSync(BUNDLE, "utf8"));
  for (const note of patched.skipped) {
    process.stderr.write(note);
  }
  installCopy(bot, patched);
  const script = new vm.Script(patched.source, { filename: BUNDLE, cachedData: cached?.cachedData });
  script.runInThisContext();
  const mermaid = globalThis.mermaid;
  mermaid.initialize({ startOnLoad: false });
  const cacheUsed = cached !== undefined && !script.cachedDataRejected;
  const saveCodeCache = codeCache === null || cacheUsed ? null : () => writeCodeCache(codeCache, patched, script);
  return { mermaid, bot, applied: patched.applied, cacheUsed, saveCodeCache };
}

// The cache file for this bundle, patched by this worker's modules, on this Node binary with these flags: the
// name holds a hash of all of them. The bundle is known by mermaid's version and its file's size, modification
// and change times, as Python knows a module's source for its bytecode: an installation or any edit gives it a
// new change time (device and inode are left out: a container's overlay mount gets a new device number at every
// start, and an inode number means nothing without its device). The file holds the patched text V8 compiled,
// so the code always comes with its own text (V8 checks a cache against the text's length only).
function codeCacheFile() {
  const key = crypto.createHash("sha256");
  const bundle = fs.statSync(BUNDLE, { bigint: true });
  const parts = [process.version, process.arch, process.execArgv.join(" "), process.env.NODE_OPTIONS ?? "",
    [VERSION, bundle.size, bundle.mtimeNs, bundle.ctimeNs].join(" ")];
  for (const name of fs.readdirSync(WORKER_DIR).filter((name) => name.endsWith(".mjs")).sort()) {
    parts.push(name, fs.readFileSync(path.join(WORKER_DIR, name), "utf8"));
  }
  for (const part of parts) {
    key.update(part).update("\0");
  }
  return path.join(CODE_CACHE_DIR, `${CODE_CACHE_PREFIX}${key.digest("hex").slice(0, 32)}${CODE_CACHE_SUFFIX}`);
}

// V8 runs a cache's code, and the worker its text, as it finds them, so one is read only where no other user
// could have put or changed it: the file and its directory belong to this user and neither is writable by group
// or others (where the system has user ids at all).
function ownedByThisUserOnly(stat) {
  return typeof process.getuid !== "function" || (stat.uid === process.getuid() && (stat.mode & 0o022) === 0);
}

function readCodeCache(file) {
  let descriptor;
  try {
    if (!ownedByThisUserOnly(fs.statSync(path.dirname(file)))) {
      return undefined;
    }
    descriptor = fs.openSync(file, "r");
    return ownedByThisUserOnly(fs.fstatSync(descriptor)) ? fromCacheFile(fs.readFileSync(descriptor)) : undefined;
  } catch {
    return undefined; // not written yet, unreadable or not one whole cache file: patch and compile the bundle
  } finally {
    if (descriptor !== undefined) {
      fs.closeSync(descriptor);
    }
  }
}

// A cache file: one line of JSON (the patches applied, what was said about those skipped, the text's length in
// bytes), the patched text in UTF-8, then V8's data. Anything else, a truncated file included, is undefined.
function fromCacheFile(data) {
  const lineEnd = data.indexOf(10);
  if (lineEnd < 0) {
    return undefined;
  }
  const { applied, skipped, sourceBytes } = JSON.parse(data.toString("utf8", 0, lineEnd));
  const start = lineEnd + 1;
  const wellFormed = applied !== null && typeof applied === "object" && Array.isArray(skipped) &&
    skipped.every((note) => typeof note === "string") && Number.isSafeInteger(sourceBytes) && sourceBytes >= 0;
  if (!wellFormed || start + sourceBytes >= data.length) {
    return undefined;
  }
  return {
    source: data.toString("utf8", start, start + sourceBytes),
    applied,
    skipped,
    cachedData: data.subarray(start + sourceBytes),
  };
}

function toCacheFile({ source, applied, skipped }, script) {
  const text = Buffer.from(source, "utf8");
  const header = Buffer.from(`${JSON.stringify({ applied, skipped, sourceBytes: text.length })}\n`, "utf8");
  return [header, text, script.createCachedData()];
}

// Written once the worker's input has ended (so the functions its diagrams needed are compiled too), through a
// temporary file renamed into place, so a reader never sees part of one; other versions' caches are removed.
// Where the directory cannot be written, the next worker compiles from the text, as without a cache.
function writeCodeCache(file, patched, script) {
  const temporary = `${file}.${process.pid}.tmp`;
  let pending = false; // a temporary file is there to remove if what follows fails
  try {
    fs.mkdirSync(CODE_CACHE_DIR, { recursive: true, mode: 0o755 });
    if (!ownedByThisUserOnly(fs.statSync(CODE_CACHE_DIR))) {
      return; // a cache there would never be read
    }
    pending = true;
    const descriptor = fs.openSync(temporary, "w", 0o644);
    try {
      for (const part of toCacheFile(patched, script)) {
        fs.writeFileSync(descriptor, part); // at the file's position, all of it
      }
    } finally {
      fs.closeSync(descriptor);
    }
    fs.renameSync(temporary, file);
    pending = false;
    for (const name of fs.readdirSync(CODE_CACHE_DIR)) {
      const other = path.join(CODE_CACHE_DIR, name);
      if (!name.startsWith(CODE_CACHE_PREFIX) || other === file) {
        continue;
      }
      // Another version's cache, or the temporary file of a worker stopped while writing one (written in well
      // under a second, so one an hour old is nobody's).
      const abandoned = name.endsWith(".tmp") && Date.now() - fs.statSync(other).mtimeMs > 3_600_000;
      if (name.endsWith(CODE_CACHE_SUFFIX) || abandoned) {
        fs.rmSync(other, { force: true });
      }
    }
  } catch {
    if (pending) {
      fs.rmSync(temporary, { force: true });
    }
  }
}

const canonical = (line) => line.replace(/ﬂ°°?/g, "#").replace(/¶ß/g, ";").replace(/[\s"';]/g, "");

// Maps the parser's 1-based line in the text it parsed back to a 1-based line of the diagram code. mermaid
// drops front matter, directives, comment lines and some blank lines before parsing and edits some lines in
// place (entities, quotes), so the parser's non-blank lines are matched, in order, to the code's lines.
function codeLine(code, parsed, blamed) {
  const codeLines = code.split(/\r\n?|\n/);
  if (codeLines.length > 1 && codeLines.at(-1) === "") {
    codeLines.pop(); // the newline ending the last line does not start another one
  }
  // A blamed line past the end or on a blank line (end of input) means the last line with text before it.
  const clamp = (line) => {
    let at = Math.min(Math.max(line, 1), codeLines.length);
    while (at > 1 && !codeLines[at - 1].trim()) {
      at -= 1;
    }
    return at;
  };
  if (!parsed) {
    return clamp(blamed);
  }
  let text = parsed.text;
  for (const [applies, rewrite] of PARSER_REWRITES) {
    if (applies(parsed.type)) {
      text = rewrite(text);
    }
  }
  const parserLines = text.split("\n");
  const canonicalCode = codeLines.map(canonical);
  const find = (from, matches) => {
    for (let j = from; j < canonicalCode.length; j++) {
      if (matches(canonicalCode[j])) {
        return j;
      }
    }
    return -1;
  };
  let cursor = 0;
  let lastParser = -1;
  let lastCode = -1;
  for (let i = 0; i < Math.min(blamed, parserLines.length); i++) {
    const wanted = canonical(parserLines[i]);
    if (!wanted) {
      continue;
    }
    let j = find(cursor, (line) => line === wanted);
    if (j < 0) {
      j = find(cursor, (line) => line.includes(wanted));
    }
    if (j >= 0) {
      lastParser = i;
      lastCode = j;
      cursor = j + 1;
    }
  }
  return lastParser < 0 ? clamp(blamed) : clamp(lastCode + 1 + (blamed - 1 - lastParser));
}

function runTestHook(code) {
  if (code.includes("%% atlas-test: hang")) {
    for (;;) {
      // Stuck on purpose: only the pool's per-diagram timeout ends this.
    }
  }
  if (code.includes("%% atlas-test: crash")) {
    process.exit(70);
  }
}

async function judge({ mermaid, bot }, code) {
  if (TEST_HOOKS) {
    runTestHook(code);
  }
  bot.parserInput = null;
  bot.parsedDiagram = null;
  let diagramType;
  try {
    ({ diagramType } = await mermaid.parse(code));
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const blamed = BLAMED_LINE.exec(message);
    return { ok: false, error: message, line: blamed ? codeLine(code, bot.parserInput, Number(blamed[1])) : null };
  }
  const step = bot.parsedDiagram && RENDER_STEPS.find(([applies]) => applies(diagramType));
  if (step) {
    try {
      step[1](bot.parsedDiagram, bot);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return { ok: false, error: message, line: null, type: diagramType, stage: "render" };
    }
  }
  return { ok: true, type: diagramType };
}

function serve(engine) {
  const queue = [];
  let pending = "";
  let busy = false;
  let ended = false;
  const pump = async () => {
    if (busy) {
      return;
    }
    busy = true;
    while (queue.length > 0) {
      const { id, code } = queue.shift();
      const verdict = await judge(engine, code);
      process.stdout.write(`${JSON.stringify({ id, ...verdict })}\n`);
      // Let stdin be read between diagrams, so the next batch is already queued when this one ends.
      await new Promise((resolve) => setImmediate(resolve));
    }
    busy = false;
    if (ended) {
      finish();
    }
  };
  const finish = async () => {
    if (engine.saveCodeCache !== null) {
      // The cache holds what V8 has compiled so far: the established diagram types first, not only this run's
      // (warm-up.mjs), within WARM_UP_MS (the pool kills a worker that takes 5 s to end, and writes no cache then).
      const until = performance.now() + WARM_UP_MS;
      for (const code of WARM_UP) {
        if (performance.now() > until) {
          break;
        }
        await judge(engine, code);
      }
      engine.saveCodeCache();
    }
    process.exit(0);
  };
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => {
    const lines = (pending + chunk).split("\n");
    pending = lines.pop();
    for (const line of lines) {
      if (line.trim()) {
        queue.push(JSON.parse(line));
      }
    }
    pump();
  });
  process.stdin.on("end", () => {
    ended = true;
    if (!busy) {
      finish();
    }
  });
}

const engine = loadMermaid();
process.stdout.write(
  `${JSON.stringify({ ready: true, version: VERSION, patches: engine.applied, codeCache: engine.cacheUsed })}\n`,
);
serve(engine);
