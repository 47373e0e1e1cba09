/* AdamW, one fused pass over parameter, gradient and both moments; in double like the reference. */
#include <math.h>
#include "common.h"

typedef struct {
  float *param, *m, *v;
  const float *grad;
  double lr, beta1, beta2, eps, decay, c1, c2, ibc1, ibc2;
} Adam;

static void adam_chunk(void *vc, int64_t b, int64_t e, int tid) {
  (void)tid;
  const Adam *c = vc;
  float *param = c->param, *m = c->m, *v = c->v;
  const float *grad = c->grad;
  const double lr = c->lr, beta1 = c->beta1, beta2 = c->beta2, eps = c->eps, decay = c->decay, c1 = c->c1,
               c2 = c->c2, ibc1 = c->ibc1, ibc2 = c->ibc2;
#pragma omp simd
  for (int64_t i = b; i < e; i++) {
    const double g = grad[i];
    const float mi = (float)(beta1 * m[i] + c1 * g);
    const float vi = (float)(beta2 * v[i] + c2 * g * g);
    m[i] = mi;
    v[i] = vi;
    param[i] = (float)(param[i] * decay - lr * (mi * ibc1) / (sqrt(vi * ibc2) + eps));
  }
}

void sr3_adamw(float *param, const float *grad, float *m, float *v, size_t n, double lr, double beta1, double beta2,
               double eps, double wd, double bc1, double bc2) {
  Adam c = {param, m, v, grad, lr, beta1, beta2, eps, 1.0 - lr * wd, 1.0 - beta1, 1.0 - beta2, 1.0 / bc1, 1.0 / bc2};
  sr3_parallel_for((int64_t)n, 8192, adam_chunk, &c);
}
