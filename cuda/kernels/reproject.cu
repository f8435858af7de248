// Reproject: a rendered view carried into another (gscache/stages/reproject.py is the reference;
// the math is gs_reproject_* of common.cuh, in float64), three kernels launched in order.
//
// Contract (GsReprojectParams, contiguous, row-major; Hs x Ws source, H x W target):
//   rgb f32[Hs,Ws,3], alpha f32[Hs,Ws], median f32[Hs,Ws]                      the source view
//   dst_from_src, src_from_dst f64[12] (3x4 rows), src_K, dst_K f64[4] (fx, fy, cx, cy)
//   zbuf u64[H*W]   filled with GS_REPROJECT_EMPTY before reproject_splat_kernel (by the caller)
//   zfill f64[H*W]  written by reproject_fill_kernel
//   out_rgb f32[H,W,3], out_alpha f32[H,W], out_depth f32[H,W], out_valid u8[H,W]  out
// Launch: 1-D, one thread per source pixel (splat) or target pixel (fill, sample).
#include "common.cuh"

extern "C" __global__ void reproject_splat_kernel(const GsReprojectParams p) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)p.src_width * p.src_height) return;
    gs_reproject_splat(p, (int)(i % p.src_width), (int)(i / p.src_width));
}

extern "C" __global__ void reproject_fill_kernel(const GsReprojectParams p) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)p.width * p.height) return;
    gs_reproject_fill(p, i);
}

extern "C" __global__ void reproject_sample_kernel(const GsReprojectParams p) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)p.width * p.height) return;
    gs_reproject_sample(p, i);
}
