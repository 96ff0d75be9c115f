// encodeEntities, which every parse runs on the diagram's text, starts with two passes that drop a semicolon:
//   txt.replace(/style.*:\S*#.*;/g, (s) => s.substring(0, s.length - 1))   and the same with `classDef`.
// Neither `.` nor `\S` matches a line terminator (\n, \r, U+2028, U+2029), so a match lies within one line. It
// starts at the line's first `word` (a later one's matches are also the first one's), takes the last `:` after
// it that a run of non-whitespace ending in a `#` follows, and ends at the last `;` after that `#`, which is the
// line's last `;`; the rest of the line holds no other `;` for a second match. So: on each line that holds
// `word`, then a `:` opening a non-whitespace run with a `#` in it, then a `;` after that `#`, the line's last
// `;` goes. The backtracking regex tries every split of the line after each `word`; this walks the line once.
const isTerminator = (code) => code === 10 || code === 13 || code === 0x2028 || code === 0x2029;
const WHITESPACE = /\s/; // what \S does not match: below 128 only tab, LF, VT, FF, CR and space
const isWhitespace = (code, char) =>
  code < 128 ? code === 32 || (code >= 9 && code <= 13) : WHITESPACE.test(char);

export function dropLastSemicolon(text, word) {
  let at = text.indexOf(word);
  let kept = "";
  let copied = 0; // text before this offset is in `kept`, or dropped
  while (at >= 0) {
    let end = at + word.length;
    while (end < text.length && !isTerminator(text.charCodeAt(end))) {
      end += 1;
    }
    const semicolon = text.lastIndexOf(";", end - 1);
    if (semicolon >= at + word.length && colonRunWithHash(text, at + word.length, semicolon)) {
      kept += text.slice(copied, semicolon);
      copied = semicolon + 1;
    }
    at = text.indexOf(word, end);
  }
  return copied === 0 ? text : kept + text.slice(copied);
}

// Whether text[from, to) holds a `:` followed by non-whitespace up to a `#`.
function colonRunWithHash(text, from, to) {
  let afterColon = false;
  for (let i = from; i < to; i++) {
    const code = text.charCodeAt(i);
    if (code === 58) { // ":"
      afterColon = true;
    } else if (code === 35) { // "#"
      if (afterColon) {
        return true;
      }
    } else if (isWhitespace(code, text[i])) {
      afterColon = false;
    }
  }
  return false;
}
