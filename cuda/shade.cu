// Shade: 3D covariances (view independent) and SH colours per view.
//
// Contract (contiguous, row-major):
//   means     f32[V,3]     world-space centres
//   quats     f32[V,4]     unit (w, x, y, z)
//   scales    f32[V,3]     linear
//   sh        f32[V,K,3]   SH coefficients, K = (degree_max + 1)^2
//   positions f32[E,3]     view centres
//   covars    f32[V,6]     out: (xx, xy, xz, yy, yz, zz)
//   colors    f32[E,V,3]   out: max(0, SH(dir) + 0.5)
// One thread per Gaussian; grid = ceil(V / blockDim.x).
#include "common.cuh"

extern "C" __global__ void shade_kernel(int E, int V, int K, int degree, const float* __restrict__ means,
                                        const float* __restrict__ quats, const float* __restrict__ scales,
                                        const float* __restrict__ sh, const float* __restrict__ positions,
                                        float* __restrict__ covars, float* __restrict__ colors) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= V) return;
    gs_quat_scale_to_covar(quats + 4 * i, scales + 3 * i, covars + 6 * i);
    const float* p = means + 3 * i;
    for (int e = 0; e < E; ++e) {
        const float* o = positions + 3 * e;
        gs_eval_sh(degree, sh + (long long)K * 3 * i, p[0] - o[0], p[1] - o[1], p[2] - o[2],
                   colors + 3 * ((long long)e * V + i));
    }
}
