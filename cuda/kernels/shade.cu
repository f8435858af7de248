// Shade: 3D covariances (view independent) and SH colours per view.
//
// Contract (GsShadeParams, contiguous, row-major):
//   means     f32[V,3]     world-space centres
//   quats     f32[V,4]     unit (w, x, y, z)
//   scales    f32[V,3]     linear
//   sh        f32[V,K,3]   SH coefficients, K = (degree_max + 1)^2
//   positions f32[E,3]     view centres
//   covars    f32[V,6]     out: (xx, xy, xz, yy, yz, zz)
//   colors    f32[E,V,3]   out: max(0, SH(dir) + 0.5)
// One thread per Gaussian; grid = ceil(V / blockDim.x).
#include "common.cuh"

extern "C" __global__ void shade_kernel(const GsShadeParams p) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= p.V) return;
    gs_quat_scale_to_covar(p.quats + 4 * i, p.scales + 3 * i, p.covars + 6 * i);
    const float* m = p.means + 3 * i;
    for (int e = 0; e < p.E; ++e) {
        const float* o = p.positions + 3 * e;
        gs_eval_sh(p.degree, p.sh + (long long)p.K * 3 * i, m[0] - o[0], m[1] - o[1], m[2] - o[2],
                   p.colors + 3 * ((long long)e * p.V + i));
    }
}
