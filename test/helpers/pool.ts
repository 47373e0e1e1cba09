/**
 * `f` over `items`, at most `width` at once, results in the order of `items`. Tests run independent child
 * processes this way: CI has two cores, so two at once keep both busy and more only wait for the CPU.
 */
export async function inPool<T, R>(items: readonly T[], f: (x: T, i: number) => Promise<R>, width = 2): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await f(items[i], i);
      }
    }),
  );
  return out;
}
