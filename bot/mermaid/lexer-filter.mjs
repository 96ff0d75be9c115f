// Which rules of a jison lexer can match at the current input, so `next` tries only those (issue 12.1).
//
// A jison lexer tries every rule regex of its current condition, in order, on every token; most cannot match
// because they need another first character. For each rule `^(?:...)` a conservative first-character set is
// read from its source: the atoms that can begin a match (alternatives, groups, quantifiers with a minimum of
// 0 letting the next term begin it, lookarounds and anchors being zero-width). The set is tested through a
// regex of those atoms with the rule's own flags, so `i`, `.` and classes mean exactly what they mean in the
// rule. A rule whose source is not understood, or that can match the empty string, is always tried. The
// filtered list keeps the rules' order, so the first (or longest) match is the same rule as before.
// Rules `^(?:.*LITERAL...)` also need LITERAL before the next line break (`.` stops there); that test is made
// once per position for all rules sharing it instead of each rule rescanning the line.
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
  const literal = lineLiteral(rule.source);
  const lineGate = literal === null ? null : `^.*${literal}`;
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

// The first character of `input` that is not whitespace, or undefined.
function firstNonSpace(input) {
  let at = 0;
  while (at < input.length && SPACE.test(input[at])) {
    at += 1;
  }
  return input[at];
}

// candidateRules(rules, ruleNumbers, input): the numbers of the rules (of `ruleNumbers`, in order) that can
// match at the start of `input`. Screens and filtered lists are memoised per rule regex and per rule list.
export function makeLexerFilter() {
  const screens = new WeakMap();
  const byList = new WeakMap();
  const lineGates = new Map();
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
  // `nonSpace` is the input's first non-whitespace character (`first` itself when that is not whitespace).
  const filterByFirst = (rules, ruleNumbers, first, nonSpace) => {
    const numbers = [];
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
        gates.push(screen.always || screen.lineGate === null ? null : gateOf(screen.lineGate, screen.flags));
      }
    }
    return gates.some((gate) => gate !== null) ? { numbers, gates } : { numbers, gates: null };
  };
  return (rules, ruleNumbers, input) => {
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
    if (filtered.gates === null) {
      return filtered.numbers;
    }
    const seen = new Map();
    return filtered.numbers.filter((_, i) => {
      const gate = filtered.gates[i];
      if (gate === null) {
        return true;
      }
      let found = seen.get(gate);
      if (found === undefined) {
        found = gate.test(input);
        seen.set(gate, found);
      }
      return found;
    });
  };
}
