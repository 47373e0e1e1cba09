/** A count with its noun, in the singular for one: '1 document', '3 documents', '2 entries'. */
export function counted(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The verb that agrees with a count: 'was' for one, 'were' for any other. */
export function wasOrWere(n: number): string {
  return n === 1 ? 'was' : 'were';
}
