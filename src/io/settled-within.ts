/**
 * Whether `p` settles (resolves or rejects) within `ms`: for waits that must not hang a process that is
 * stopping on something that may never answer. The timer is cleared either way, so it keeps nothing alive.
 */
export async function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const settled = p.then(
    () => true,
    () => true,
  );
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}
