// Bin: tile intersections of every (view, Gaussian), as 64-bit keys (layout in common.cuh).
// The host side does the exclusive prefix sum of the counts and the stable radix sort of the keys
// (torch.cumsum and torch.sort, which run CUB on the GPU) between these kernels.
//
// Contract (contiguous, row-major; EV = E * V, I = total intersections, T = tiles per view):
//   means2d   f32[EV,2], radii i32[EV,2], depths f32[EV]     from project
//   counts    i32[EV]    out (bin_count_kernel): tiles touched by each (view, Gaussian)
//   offsets   i64[EV]    exclusive prefix sum of counts (where each one's keys start)
//   keys      i64[I]     out (bin_emit_kernel): (eye * T + tile) << 32 | depth bits
//   flat_ids  i32[I]     out (bin_emit_kernel): eye * V + gaussian
//   ranges    i32[E*T,2] out (tile_ranges_kernel, zeroed first): [start, end) of each tile in the
//                        sorted keys
// One thread per (view, Gaussian), or per intersection for tile_ranges_kernel.
#include "common.cuh"

extern "C" __global__ void bin_count_kernel(long long EV, const float* __restrict__ means2d,
                                            const int* __restrict__ radii, int tile_px, int tiles_x, int tiles_y,
                                            int* __restrict__ counts) {
    const long long f = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (f >= EV) return;
    int lo[2], hi[2];
    counts[f] = gs_tile_rect(means2d[2 * f], means2d[2 * f + 1], radii[2 * f], radii[2 * f + 1], tile_px, tiles_x,
                             tiles_y, lo, hi);
}

extern "C" __global__ void bin_emit_kernel(int E, int V, const float* __restrict__ means2d,
                                           const int* __restrict__ radii, const float* __restrict__ depths,
                                           const long long* __restrict__ offsets, int tile_px, int tiles_x,
                                           int tiles_y, long long* __restrict__ keys, int* __restrict__ flat_ids) {
    const long long f = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (f >= (long long)E * V) return;
    int lo[2], hi[2];
    if (!gs_tile_rect(means2d[2 * f], means2d[2 * f + 1], radii[2 * f], radii[2 * f + 1], tile_px, tiles_x, tiles_y,
                      lo, hi))
        return;
    const long long T = (long long)tiles_x * tiles_y;
    const long long eye = f / V;
    const long long depth_bits = (long long)gs_float_bits(depths[f]);
    long long out = offsets[f];
    // Row-major over the rectangle, as the torch reference emits them.
    for (int ty = lo[1]; ty < hi[1]; ++ty)
        for (int tx = lo[0]; tx < hi[0]; ++tx, ++out) {
            const long long tile = eye * T + (long long)ty * tiles_x + tx;
            keys[out] = (tile << GS_TILE_KEY_SHIFT) | depth_bits;
            flat_ids[out] = (int)f;
        }
}

extern "C" __global__ void tile_ranges_kernel(long long I, const long long* __restrict__ keys,
                                              int* __restrict__ ranges) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= I) return;
    const long long tile = keys[i] >> GS_TILE_KEY_SHIFT;
    if (i == 0 || (keys[i - 1] >> GS_TILE_KEY_SHIFT) != tile) ranges[2 * tile] = (int)i;
    if (i == I - 1 || (keys[i + 1] >> GS_TILE_KEY_SHIFT) != tile) ranges[2 * tile + 1] = (int)(i + 1);
}
