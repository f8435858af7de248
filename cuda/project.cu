// Project: EWA splatting of every visible Gaussian into every view.
//
// Contract (contiguous, row-major):
//   means    f32[V,3]      world-space centres
//   covars   f32[V,6]      world-space covariance, upper triangle
//   views    GsView[E]     (common.cuh) T_cam_world rotation/translation, intrinsics, size, clip
//   means2d  f32[E,V,2]    out: pixel coordinates of the centres
//   conics   f32[E,V,3]    out: inverse 2D covariance (a, b, c)
//   depths   f32[E,V]      out: view-space z
//   radii    i32[E,V,2]    out: extent_sigma half extents in pixels, 0 when not drawn
// One thread per (view, Gaussian); grid = ceil(E * V / blockDim.x).
#include "common.cuh"

extern "C" __global__ void project_kernel(int E, int V, const float* __restrict__ means,
                                          const float* __restrict__ covars, const GsView* __restrict__ views,
                                          float eps2d, float extent_sigma, float* __restrict__ means2d,
                                          float* __restrict__ conics, float* __restrict__ depths,
                                          int* __restrict__ radii) {
    const long long f = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (f >= (long long)E * V) return;
    const long long e = f / V, i = f % V;
    gs_project(means + 3 * i, covars + 6 * i, views[e], eps2d, extent_sigma, means2d + 2 * f, conics + 3 * f,
               depths + f, radii + 2 * f);
}
