// addSubGraph's `uniq` (flowchart database) drops a subgraph's blank items and repeated node ids, and takes its
// direction statement out, with one object per type whose keys are the items seen: every new node id adds a
// property, a new hidden class in V8 for every id of every diagram. For the items it can take (strings, and
// direction statements: objects whose stmt is "dir") a Set of the strings gives the same list and direction.
// Two strings are not like the others as keys: `__proto__` (its assignment is ignored, so it is never found)
// and `hasOwnProperty` (it replaces the method the next item is looked up with, which then throws). A list
// holding either, or any other item (most make `uniq` throw), returns null: mermaid's own code runs it.
export function uniqueSubgraphItems(items) {
  for (const item of items) {
    if (
      typeof item === "string"
        ? item === "__proto__" || item === "hasOwnProperty"
        : item === null || typeof item !== "object" || item.stmt !== "dir"
    ) {
      return null;
    }
  }
  const seen = new Set();
  const nodeList = [];
  let dir;
  for (const item of items) {
    if (typeof item !== "string") {
      dir = item.value;
    } else if (item.trim() !== "" && !seen.has(item)) {
      seen.add(item);
      nodeList.push(item);
    }
  }
  return { nodeList, dir };
}
