// Which rules of a jison lexer can match at the current input, so `next` tries only those (issue 12.1).
//
// A jison lexer tries every rule regex of its current condition, in order, on every token; most cannot match
// because they need another first character. For each rule `^(?:...)` a conservative first-character set is
// read from its source: the atoms that can begin a match (alternatives, groups, quantifiers with a minimum of
// 0 letting the next term begin it, lookarounds and anchors being zero-width). The set is tested through a
// regex of those atoms with the rule's own flags, so `i`, `.` and classes mean exactly what they mean in the
// rule. A rule whose source is not understood, or that can match the empty string, is always tried. The
// filtered list keeps the rules' order, so the first (or longest) match is the same rule as before.
// Rules `^(?:.*LITERAL...)` also need LITERAL before the next line break (`.` stops there). That test is made
// for all rules sharing the literal at once, and a lexer that only ever consumes its input from the front
// (every one of the bundle but two: see lexerMemo) answers it from where it last found the literal or the line
// break, instead of rescanning the line on every token.
// Rules `^(?:\s*REST)` (flowchart links: `\s*[xo<]?--+...`) can begin with any whitespace, so every indented
// line and every token after a space tried them. When no atom that can begin REST matches a whitespace
// character (tested on every character `\s` matches) and REST cannot match the empty string, the `\s*` of a
// match must take the whole run of whitespace the input starts with (REST begins with a non-space), so the
// rule is tried only when the first character after that run can begin REST.

const ALWAYS = { always: true };
const SYNTAX = new Set("\\^$.*+?()[]{}|/");
const CLASS_ESCAPES = new Set("dDwWsS");
const ZERO_WIDTH = { first: [], nullable: true };
const NEVER = { first: [], nullable: false };
const QUANTIFIER_BRACES = /^\{(\d+)(?:,(\d*))?\}/;
const UNSUPPORTED_FLAGS = /[gmyuv]/; // `^` not anchored at the start, or matches of whole code points
const SPACE_RUN_HEAD = "^(?:\\s*";
const SPACE = /\s/;
// Every UTF-16 code unit `\s` matches (the flags in use do not change that set).
const SPACES = Array.from({ length: 0x10000 }, (_, code) => String.fromCharCode(code)).filter((char) =>
  SPACE.test(char),
);

class Unanalysable extends Error {}

// A recursive-descent reading of a regex source, keeping for each piece the atoms that can begin its match
// and whether it can match the empty string.
class FirstSetReader {
  constructor(source) {
    this.source = source;
    this.at = 0;
  }

  alternation() {
    const first = [];
    let nullable = false;
    for (;;) {
      const branch = this.sequence();
      first.push(...branch.first);
      nullable ||= branch.nullable;
      if (this.source[this.at] !== "|") {
        return { first, nullable };
      }
      this.at += 1;
    }
  }

  sequence() {
    const first = [];
    while (this.at < this.source.length && this.source[this.at] !== "|" && this.source[this.at] !== ")") {
      const term = this.term();
      first.push(...term.first);
      if (!term.nullable) {
        // Later terms cannot begin the match, but they are still read to find where this sequence ends.
        this.skipRest();
        return { first, nullable: false };
      }
    }
    return { first, nullable: true };
  }

  skipRest() {
    while (this.at < this.source.length && this.source[this.at] !== "|" && this.source[this.at] !== ")") {
      this.term();
    }
  }

  term() {
    const atom = this.atom();
    const min = this.quantifierMinimum();
    return min === null ? atom : { first: atom.first, nullable: atom.nullable || min === 0 };
  }

  quantifierMinimum() {
    const char = this.source[this.at];
    let min = null;
    if (char === "*" || char === "?") {
      min = 0;
      this.at += 1;
    } else if (char === "+") {
      min = 1;
      this.at += 1;
    } else if (char === "{") {
      const braces = QUANTIFIER_BRACES.exec(this.source.slice(this.at));
      if (braces) {
        min = Number(braces[1]);
        this.at += braces[0].length;
      }
    }
    if (min !== null && this.source[this.at] === "?") {
      this.at += 1; // lazy: the same strings match
    }
    return min;
  }

  atom() {
    const char = this.source[this.at];
    if (char === "(") {
      return this.group();
    }
    if (char === "[") {
      return this.characterClass();
    }
    if (char === "\\") {
      return this.escape();
    }
    this.at += 1;
    if (char === "^" || char === "$") {
      return ZERO_WIDTH;
    }
    if (char === ".") {
      return { first: ["."], nullable: false };
    }
    if (char === undefined || char === ")" || char === "|" || "*+?".includes(char)) {
      throw new Unanalysable();
    }
    return { first: [SYNTAX.has(char) ? `\\${char}` : char], nullable: false };
  }

  group() {
    if (this.source.startsWith("(?!)", this.at)) {
      // An empty negative lookahead never matches (the flowchart's text rule ends its alternatives with one).
      this.at += 4;
      return NEVER;
    }
    const lookaround = /^\(\?(?:=|!|<=|<!)/.exec(this.source.slice(this.at));
    if (lookaround) {
      this.at += lookaround[0].length;
      this.alternation();
      this.expect(")");
      return ZERO_WIDTH;
    }
    if (this.source.startsWith("(?:", this.at)) {
      this.at += 3;
    } else if (this.source.startsWith("(?", this.at)) {
      throw new Unanalysable(); // named groups, modifiers
    } else {
      this.at += 1;
    }
    const inner = this.alternation();
    this.expect(")");
    return inner;
  }

  characterClass() {
    const start = this.at;
    this.at += 1;
    if (this.source[this.at] === "^") {
      this.at += 1;
    }
    // Without the `v` flag a class ends at the first unescaped `]` (`[]` is the empty class).
    while (this.at < this.source.length && this.source[this.at] !== "]") {
      this.at += this.source[this.at] === "\\" ? 2 : 1;
    }
    this.expect("]");
    return { first: [this.source.slice(start, this.at)], nullable: false };
  }

  escape() {
    const char = this.source[this.at + 1];
    if (char === undefined || /[1-9k]/.test(char) || (char === "0" && /\d/.test(this.source[this.at + 2] ?? ""))) {
      throw new Unanalysable(); // back references and octal escapes
    }
    if (char === "b" || char === "B") {
      this.at += 2;
      return ZERO_WIDTH;
    }
    const long = { x: /^\\x[\da-fA-F]{2}/, u: /^\\u[\da-fA-F]{4}/, c: /^\\c[a-zA-Z]/ }[char];
    const escaped = long?.exec(this.source.slice(this.at))?.[0] ?? this.source.slice(this.at, this.at + 2);
    this.at += escaped.length;
    return { first: [escaped], nullable: false };
  }

  expect(char) {
    if (this.source[this.at] !== char) {
      throw new Unanalysable();
    }
    this.at += 1;
  }
}

// Whether `source` is `^(?:...)` whose group has a single alternative, so every match runs through all of it.
function singleAlternative(source) {
  let depth = 0;
  for (let at = 1; at < source.length; at++) {
    const char = source[at];
    if (char === "\\") {
      at += 1;
    } else if (char === "[") {
      while (at < source.length && source[at + 1] !== "]") {
        at += source[at + 1] === "\\" ? 2 : 1;
      }
      at += 1;
    } else if (char === "(") {
      depth += 1;
    } else if (char === ")") {
      depth -= 1;
      if (depth === 0 && at !== source.length - 1) {
        return false;
      }
    } else if (char === "|" && depth === 1) {
      return false;
    }
  }
  return depth === 0;
}

// The literal text a `^(?:.*LITERAL` rule needs on the current line, as regex source, or null.
function lineLiteral(source) {
  const head = "^(?:.*";
  if (!source.startsWith(head) || !singleAlternative(source)) {
    return null;
  }
  let at = head.length;
  const parts = [];
  for (;;) {
    const char = source[at];
    if (char === "\\" && source[at + 1] !== undefined && SYNTAX.has(source[at + 1])) {
      parts.push(source.slice(at, at + 2));
      at += 2;
    } else if (char !== undefined && /[A-Za-z0-9<>\-_:= ]/.test(char)) {
      parts.push(char);
      at += 1;
    } else {
      break;
    }
  }
  if ("*+?{".includes(source[at] ?? "")) {
    parts.pop(); // the last literal is quantified, so it may be absent
  }
  return parts.length > 0 ? parts.join("") : null;
}

// How one rule is screened: always tried, by its first character, and (maybe) by a literal on its line.
export function screenFor(rule) {
  if (UNSUPPORTED_FLAGS.test(rule.flags) || !rule.source.startsWith("^")) {
    return ALWAYS;
  }
  let firstSet;
  try {
    const reader = new FirstSetReader(rule.source);
    firstSet = reader.alternation();
    if (reader.at !== rule.source.length) {
      return ALWAYS;
    }
  } catch (error) {
    if (error instanceof Unanalysable) {
      return ALWAYS;
    }
    throw error;
  }
  // With the `s` flag `.` crosses line breaks: such a rule is screened by its first character only.
  const literal = rule.flags.includes("s") ? null : lineLiteral(rule.source);
  const lineGate = literal === null ? null : `[\\n\\r\\u2028\\u2029]|${literal}`;
  if (firstSet.nullable) {
    return ALWAYS;
  }
  const atoms = firstSet.first.length > 0 ? firstSet.first.join("|") : "(?!)";
  const startsWith = new RegExp(`^(?:${atoms})`, rule.flags);
  return { always: false, startsWith, afterSpaces: afterSpaces(rule), lineGate, flags: rule.flags };
}

// For a rule `^(?:\s*REST)` whose REST begins with a non-space and is never empty: the regex the first
// non-space character of the input must match; otherwise null.
function afterSpaces(rule) {
  if (!rule.source.startsWith(SPACE_RUN_HEAD) || !singleAlternative(rule.source)) {
    return null;
  }
  let rest;
  const reader = new FirstSetReader(rule.source);
  reader.at = SPACE_RUN_HEAD.length;
  try {
    rest = reader.sequence();
  } catch (error) {
    if (error instanceof Unanalysable) {
      return null;
    }
    throw error;
  }
  if (reader.at !== rule.source.length - 1 || rest.nullable || rest.first.length === 0) {
    return null;
  }
  const startsWith = new RegExp(`^(?:${rest.first.join("|")})`, rule.flags);
  return SPACES.some((char) => startsWith.test(char)) ? null : startsWith;
}

// Whether a code unit is one `.` does not match: the line terminators.
const isLineBreak = (code) => code === 10 || code === 13 || code === 0x2028 || code === 0x2029;

// The first character of `input` that is not whitespace, or undefined. ASCII is decided by code (`\s` there is
// tab, line feed, vertical tab, form feed, carriage return and space), the rest by `\s` itself.
function firstNonSpace(input) {
  for (let at = 0; at < input.length; at++) {
    const code = input.charCodeAt(at);
    if (code < 128 ? code !== 32 && (code < 9 || code > 13) : !SPACE.test(input[at])) {
      return input[at];
    }
  }
  return undefined;
}

// Whether the literal of a line gate occurs in `input` before its first line break. The gate's regex finds the
// first line break or occurrence of the literal, whichever comes first (the literal holds no line break). A
// `memo` (per lexer and gate) keeps where, counted as the length of input left there: a later input of the same
// lexer is a suffix of this one, so while it is at least that long the same line break or literal is still the
// first it holds, and the answer stands; once it is shorter, the line is scanned again from where it now starts.
function lineHasLiteral(gate, input, memo) {
  const known = memo?.get(gate);
  if (known !== undefined && input.length >= known.left) {
    return known.literal;
  }
  const at = input.search(gate);
  const literal = at >= 0 && !isLineBreak(input.charCodeAt(at));
  // Neither a line break nor the literal in the rest of the input: none in any later input either.
  memo?.set(gate, { literal, left: at < 0 ? -1 : input.length - at });
  return literal;
}

// Lexer actions that put text back into the input (`unput`, and `less`, which calls it): a later input of such a
// lexer need not be a suffix of an earlier one, so its gates are tested afresh on every token.
const PUTS_TEXT_BACK = /\bthis\.(?:unput|less)\(/;

// Gate memos per lexer object: jison's parse runs each parse on its own `Object.create(lexer)`, whose input
// only shrinks from the front unless its actions put text back (see PUTS_TEXT_BACK); memos are dropped with it.
function makeLexerMemos() {
  const memos = new WeakMap();
  const putsTextBack = new WeakMap();
  return (lexer) => {
    if (lexer === undefined) {
      return null;
    }
    const action = lexer.performAction;
    let back = putsTextBack.get(action);
    if (back === undefined) {
      back = PUTS_TEXT_BACK.test(String(action));
      putsTextBack.set(action, back);
    }
    if (back) {
      return null;
    }
    let memo = memos.get(lexer);
    if (memo === undefined) {
      memo = new Map();
      memos.set(lexer, memo);
    }
    return memo;
  };
}

// The most line gates one list is filtered by through a bit mask of their answers (more are tested rule by rule).
const MASKED_GATES = 30;

// candidateRules(rules, ruleNumbers, input, lexer): the numbers of the rules (of `ruleNumbers`, in order) that
// can match at the start of `input`, the remaining input of `lexer` (optional: without it no gate answer is
// remembered). Screens and filtered lists are memoised per rule regex and per rule list, first character and,
// for gated rules, the gates' answers.
export function makeLexerFilter() {
  const screens = new WeakMap();
  const byList = new WeakMap();
  const lineGates = new Map();
  const lexerMemo = makeLexerMemos();
  const screenOf = (rule) => {
    let screen = screens.get(rule);
    if (screen === undefined) {
      screen = screenFor(rule);
      screens.set(rule, screen);
    }
    return screen;
  };
  const gateOf = (source, flags) => {
    const key = `${flags}/${source}`;
    let gate = lineGates.get(key);
    if (gate === undefined) {
      gate = new RegExp(source, flags);
      lineGates.set(key, gate);
    }
    return gate;
  };
  // `nonSpace` is the input's first non-whitespace character (`first` itself when that is not whitespace). A
  // list with gated rules also keeps its distinct gates, each listed rule's gate (or -1) and one filtered list
  // per combination of the gates' answers met so far.
  const filterByFirst = (rules, ruleNumbers, first, nonSpace) => {
    const numbers = [];
    const gateOfRule = [];
    const gates = [];
    for (const number of ruleNumbers) {
      const screen = screenOf(rules[number]);
      const admitted =
        screen.always ||
        (first !== undefined &&
          screen.startsWith.test(first) &&
          (screen.afterSpaces === null || (nonSpace !== undefined && screen.afterSpaces.test(nonSpace))));
      if (admitted) {
        numbers.push(number);
        const gate = screen.always || screen.lineGate === null ? null : gateOf(screen.lineGate, screen.flags);
        if (gate !== null && !gates.includes(gate)) {
          gates.push(gate);
        }
        gateOfRule.push(gate === null ? -1 : gates.indexOf(gate));
      }
    }
    return gates.length === 0 ? { numbers, gates: null } : { numbers, gates, gateOfRule, byAnswers: new Map() };
  };
  const gated = (filtered, input, memo) => {
    const { numbers, gates, gateOfRule, byAnswers } = filtered;
    if (gates.length > MASKED_GATES) {
      const answers = gates.map((gate) => lineHasLiteral(gate, input, memo));
      return numbers.filter((_, i) => gateOfRule[i] === -1 || answers[gateOfRule[i]]);
    }
    let mask = 0;
    for (let i = 0; i < gates.length; i++) {
      if (lineHasLiteral(gates[i], input, memo)) {
        mask |= 1 << i;
      }
    }
    let admitted = byAnswers.get(mask);
    if (admitted === undefined) {
      admitted = numbers.filter((_, i) => gateOfRule[i] === -1 || (mask & (1 << gateOfRule[i])) !== 0);
      byAnswers.set(mask, admitted);
    }
    return admitted;
  };
  return (rules, ruleNumbers, input, lexer) => {
    let perFirst = byList.get(ruleNumbers);
    if (perFirst === undefined) {
      perFirst = new Map();
      byList.set(ruleNumbers, perFirst);
    }
    const first = input[0];
    let filtered = perFirst.get(first);
    if (filtered === undefined) {
      // After whitespace the list also depends on the first other character: one list per such character.
      filtered = first !== undefined && SPACE.test(first) ? new Map() : filterByFirst(rules, ruleNumbers, first, first);
      perFirst.set(first, filtered);
    }
    if (filtered instanceof Map) {
      const nonSpace = firstNonSpace(input);
      let afterSpace = filtered.get(nonSpace);
      if (afterSpace === undefined) {
        afterSpace = filterByFirst(rules, ruleNumbers, first, nonSpace);
        filtered.set(nonSpace, afterSpace);
      }
      filtered = afterSpace;
    }
    return filtered.gates === null ? filtered.numbers : gated(filtered, input, lexerMemo(lexer));
  };
}
