// The stopword package (3.x) ships no type declarations; these cover what search-r3 uses: per-language word lists.
declare module 'stopword' {
  const lists: Record<string, string[] | ((...args: unknown[]) => unknown)>;
  export = lists;
}
