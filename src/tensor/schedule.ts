/** Learning-rate schedules: functions from the step number (0-based) to a learning rate. */
export type Schedule = (step: number) => number;

/**
 * Linear warm-up from 0 to peak over warmupSteps, then cosine decay to minLr at totalSteps
 * (as transformers' get_cosine_schedule_with_warmup, with a floor).
 */
export function warmupCosine(peak: number, warmupSteps: number, totalSteps: number, minLr = 0): Schedule {
  return (step) => {
    if (step < warmupSteps) return (peak * (step + 1)) / warmupSteps;
    const span = Math.max(1, totalSteps - warmupSteps);
    const progress = Math.min(1, (step - warmupSteps) / span);
    return minLr + (peak - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
  };
}

export function constant(lr: number): Schedule {
  return () => lr;
}
