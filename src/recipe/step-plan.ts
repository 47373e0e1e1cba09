/**
 * Which of the recipe's steps run, by make's rule over what each step reads. A step runs when a step whose
 * output it reads made that output anew in this run with other contents (its own output is then stale), or
 * when it is not done and is a target (it makes what the run delivers) or a step that may still run reads its
 * output. A step whose
 * output is gone while every step that reads it is done is left alone: deleting a bulky corpus or run folder
 * after use costs no rebuild, and no retraining of what followed it.
 */

export interface StepStatus {
  name: string;
  /** The steps whose outputs this one reads (all earlier in the list). */
  needs: readonly string[];
  done: boolean;
  /** It makes what the run delivers (the model folder), so it runs whenever it is not done. */
  target: boolean;
}

/**
 * The steps of `ahead` (the steps not yet passed, in order) that may run, given `changed`: the
 * passed steps that ran and made an output unlike the one before. A step that may run is taken to change its
 * output, so what reads it may run too; the first step of `ahead` runs exactly when it is in the answer.
 */
export function stepsThatMayRun(ahead: readonly StepStatus[], changed: ReadonlySet<string>): Set<string> {
  const may = new Set<string>();
  for (let grew = true; grew;) {
    grew = false;
    for (const s of ahead) {
      if (may.has(s.name)) continue;
      const stale = s.needs.some((n) => changed.has(n) || may.has(n));
      const wanted = s.target || ahead.some((r) => may.has(r.name) && r.needs.includes(s.name));
      if (stale || (!s.done && wanted)) {
        may.add(s.name);
        grew = true;
      }
    }
  }
  return may;
}
