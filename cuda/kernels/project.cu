// Project: EWA splatting of every visible Gaussian into every view.
//
// Contract (GsProjectParams, contiguous, row-major):
//   means    f32[V,3]      world-space centres
//   covars   f32[V,6]      world-space covariance, upper triangle
//   views    GsView[E]     (common.cuh) T_cam_world rotation/translation, intrinsics, size, clip
//   means2d  f32[E,V,2]    out: pixel coordinates of the centres
//   conics   f32[E,V,3]    out: inverse 2D covariance (a, b, c)
//   depths   f32[E,V]      out: view-space z
//   radii    i32[E,V,2]    out: extent_sigma half extents in pixels, 0 when not drawn
// One thread per (view, Gaussian); grid = ceil(E * V / blockDim.x).
#include "common.cuh"

extern "C" __global__ void project_kernel(const GsProjectParams p) {
    const long long f = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (f >= (long long)p.E * p.V) return;
    const long long e = f / p.V, i = f % p.V;
    gs_project(p.means + 3 * i, p.covars + 6 * i, p.views[e], p.eps2d, p.extent_sigma, p.means2d + 2 * f,
               p.conics + 3 * f, p.depths + f, p.radii + 2 * f);
}

// Scale projection (GsScaleProjectionParams, common.cuh): a lower-resolution view's projection
// derived from the projection into the same view (a foveated frame's periphery views):
//   means2d, conics, depths [E,V,...] at the higher resolution, views GsView[E] at the lower
//   -> out_means2d f32[E,V,2], out_conics f32[E,V,3], out_radii i32[E,V,2] (the depths are shared)
// One thread per (view, Gaussian).
extern "C" __global__ void scale_projection_kernel(const GsScaleProjectionParams p) {
    const long long f = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (f >= (long long)p.E * p.V) return;
    gs_scale_projection(p, f);
}
