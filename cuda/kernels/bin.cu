// Bin: tile intersections of every (view, Gaussian), as 64-bit keys (layout in common.cuh).
// The host side does the exclusive prefix sum of the counts and the stable radix sort of the keys
// (torch.cumsum and torch.sort, which run CUB on the GPU) between these kernels.
//
// Contract (GsBinParams, contiguous, row-major; EV = E * V, I = intersections, T = tiles per view):
//   means2d   f32[EV,2], radii i32[EV,2], depths f32[EV]     from project
//   counts    i32[EV]    out (bin_count_kernel): tiles touched by each (view, Gaussian)
//   offsets   i64[EV]    exclusive prefix sum of counts (where each one's keys start)
//   keys      i64[I]     out (bin_emit_kernel): (eye * T + tile) << 32 | depth bits
//   ids       i32[I]     out (bin_emit_kernel): eye * V + gaussian
//   ranges    i32[E*T,2] out (tile_ranges_kernel): [start, end) of each tile in the sorted keys;
//                        every tile is written, an empty one as (k, k) with k the intersections of
//                        the tiles before it (the contract of TileBins.tile_ranges)
// One thread per (view, Gaussian), or per tile for tile_ranges_kernel.
#include "common.cuh"

extern "C" __global__ void bin_count_kernel(const GsBinParams p) {
    const long long f = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (f >= (long long)p.E * p.V) return;
    int lo[2], hi[2];
    p.counts[f] = gs_tile_rect(p.means2d[2 * f], p.means2d[2 * f + 1], p.radii[2 * f], p.radii[2 * f + 1], p.tile_px,
                               p.tiles_x, p.tiles_y, lo, hi);
}

extern "C" __global__ void bin_emit_kernel(const GsBinParams p) {
    const long long f = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (f >= (long long)p.E * p.V) return;
    int lo[2], hi[2];
    if (!gs_tile_rect(p.means2d[2 * f], p.means2d[2 * f + 1], p.radii[2 * f], p.radii[2 * f + 1], p.tile_px,
                      p.tiles_x, p.tiles_y, lo, hi))
        return;
    const long long T = (long long)p.tiles_x * p.tiles_y;
    const long long eye = f / p.V;
    const long long depth_bits = (long long)gs_float_bits(p.depths[f]);
    long long out = p.offsets[f];
    // Row-major over the rectangle, as the torch reference emits them.
    for (int ty = lo[1]; ty < hi[1]; ++ty)
        for (int tx = lo[0]; tx < hi[0]; ++tx, ++out) {
            const long long tile = eye * T + (long long)ty * p.tiles_x + tx;
            p.keys[out] = (tile << GS_TILE_KEY_SHIFT) | depth_bits;
            p.ids[out] = (int)f;
        }
}

extern "C" __global__ void tile_ranges_kernel(const GsBinParams p) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)p.E * p.tiles_x * p.tiles_y) return;
    p.ranges[2 * t] = (int)gs_tile_lower_bound(p.keys, p.n_isect, t);
    p.ranges[2 * t + 1] = (int)gs_tile_lower_bound(p.keys, p.n_isect, t + 1);
}
