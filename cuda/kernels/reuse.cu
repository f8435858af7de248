// Pixel reuse: per-tile statistics of a warp and the composite with a rasterized view
// (gscache/stages/reuse.py is the reference; the math is gs_tile_stats and gs_reuse_composite of
// common.cuh).
//
// Contract (contiguous, row-major; H x W view, T = tiles_x * tiles_y):
//   GsTileStatsParams: rgb f32[H,W,3], alpha f32[H,W], depth f32[H,W], valid u8[H,W]    the warp
//                      stats f32[T,GS_TILE_STATS]                                         out
//   GsReuseCompositeParams: w_rgb, w_alpha, w_depth, valid                                the warp
//                      reused u8[T]; rgb, alpha, depth, median                  in/out (composited)
//                      truth f32[T,2]                                                     out
// Launch: 1-D, one thread per tile (a tile's pixels in order: its sums are the cpu kernel's).
#include "common.cuh"

extern "C" __global__ void tile_stats_kernel(const GsTileStatsParams p) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)p.tiles_x * p.tiles_y) return;
    gs_tile_stats(p, t);
}

extern "C" __global__ void reuse_composite_kernel(const GsReuseCompositeParams p) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)p.tiles_x * p.tiles_y) return;
    gs_reuse_composite(p, t);
}
