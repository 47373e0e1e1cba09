/* AdamW, one fused pass over parameter, gradient and both moments; in double like the reference. */
#include <math.h>
#include <omp.h>
#include "common.h"

void sr3_adamw(float *param, const float *grad, float *m, float *v, size_t n, double lr, double beta1, double beta2,
               double eps, double wd, double bc1, double bc2) {
  const double decay = 1.0 - lr * wd, c1 = 1.0 - beta1, c2 = 1.0 - beta2, ibc1 = 1.0 / bc1, ibc2 = 1.0 / bc2;
  const int T = sr3_threads_for(n * 2);
  const int64_t N = (int64_t)n;
#pragma omp parallel for simd num_threads(T) if (parallel : T > 1) schedule(static)
  for (int64_t i = 0; i < N; i++) {
    const double g = grad[i];
    const float mi = (float)(beta1 * m[i] + c1 * g);
    const float vi = (float)(beta2 * v[i] + c2 * g * g);
    m[i] = mi;
    v[i] = vi;
    param[i] = (float)(param[i] * decay - lr * (mi * ibc1) / (sqrt(vi * ibc2) + eps));
  }
}
