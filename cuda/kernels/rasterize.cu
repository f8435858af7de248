// Rasterize: front-to-back blending, one thread block per tile, one thread per pixel.
//
// Contract (GsRasterParams, contiguous, row-major; EV = E * V, T = tiles_x * tiles_y):
//   means2d   f32[EV,2], conics f32[EV,3], depths f32[EV]   from project
//   opacities f32[V]                                          per visible Gaussian
//   colors    f32[EV,3]                                       from shade
//   gaussian_ids i32[I]     visible-Gaussian index of each sorted intersection
//   ranges    i32[E*T,2]    [start, end) of each tile's intersections
//   background f32[3]
//   out_rgb   f32[E,H,W,3], out_alpha f32[E,H,W], out_depth f32[E,H,W],
//   out_median_depth f32[E,H,W]                                                  out
//   pixel_mask u8[E,H,W] or null: only these pixels are wanted; the others stop at once (their
//              outputs are the background's) and a tile none of whose pixels is wanted reads nothing
// Launch: grid (tiles_x, tiles_y, E), block (tile_px, tile_px), dynamic shared memory
// tile_px^2 * GS_SPLAT_FLOATS floats (one batch of splats: centre 2, conic 3, opacity 1, colour 3, depth 1).
// Each block walks its tile's list in batches of tile_px^2 splats that its threads load into
// shared memory together; a pixel stops at the splat that would take its transmittance below
// t_min (gs_blend), and the block stops when all its pixels have.
#include "common.cuh"

extern "C" __global__ void rasterize_kernel(const GsRasterParams p) {
    GS_DYNAMIC_SHARED(float, batch);
    const int n = blockDim.x * blockDim.y;  // splats per batch = pixels per tile
    float* s_mx = batch;
    float* s_my = batch + n;
    float* s_A = batch + 2 * n;
    float* s_Bn = batch + 3 * n;
    float* s_C = batch + 4 * n;
    float* s_op = batch + 5 * n;
    float* s_r = batch + 6 * n;
    float* s_g = batch + 7 * n;
    float* s_b = batch + 8 * n;
    float* s_z = batch + 9 * n;  // GS_SPLAT_FLOATS arrays of n

    const int eye = blockIdx.z;
    const long long tile = (long long)eye * p.tiles_x * p.tiles_y + (long long)blockIdx.y * p.tiles_x + blockIdx.x;
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int tid = threadIdx.y * blockDim.x + threadIdx.x;
    const bool inside = x < p.width && y < p.height;
    const float px = (float)x + 0.5f, py = (float)y + 0.5f;

    const int start = p.ranges[2 * tile], end = p.ranges[2 * tile + 1];
    float T = 1.f, depth_acc = 0.f, median_depth = 0.f;
    float rgb[3] = {0.f, 0.f, 0.f};
    bool done = !inside || (p.pixel_mask && !p.pixel_mask[((long long)eye * p.height + y) * p.width + x]);

    for (int base = start; base < end; base += n) {
        // Stop the whole tile once every pixel is finished. This barrier also keeps the loads of
        // the next batch behind every thread's reads of the last one.
        if (__syncthreads_count(done) == n) break;
        const int idx = base + tid;
        if (idx < end) {
            const int g = p.gaussian_ids[idx];
            const long long f = (long long)eye * p.V + g;
            s_mx[tid] = p.means2d[2 * f];
            s_my[tid] = p.means2d[2 * f + 1];
            s_A[tid] = -0.5f * p.conics[3 * f];
            s_Bn[tid] = -p.conics[3 * f + 1];
            s_C[tid] = -0.5f * p.conics[3 * f + 2];
            s_op[tid] = p.opacities[g];
            s_r[tid] = p.colors[3 * f];
            s_g[tid] = p.colors[3 * f + 1];
            s_b[tid] = p.colors[3 * f + 2];
            s_z[tid] = p.depths[f];
        }
        __syncthreads();
        const int count = min(n, end - base);
        for (int j = 0; j < count && !done; ++j) {
            const float alpha = gs_splat_alpha(s_mx[j] - px, s_my[j] - py, s_A[j], s_Bn[j], s_C[j], s_op[j],
                                               p.alpha_max, p.alpha_min);
            if (alpha == 0.f) continue;
            const float color[3] = {s_r[j], s_g[j], s_b[j]};
            if (!gs_blend(alpha, T, p.t_min, color, s_z[j], rgb, depth_acc, median_depth)) done = true;
        }
    }
    if (!inside) return;
    const long long o = ((long long)eye * p.height + y) * p.width + x;
    const float a = 1.f - T;
    p.out_rgb[3 * o] = rgb[0] + T * p.background[0];
    p.out_rgb[3 * o + 1] = rgb[1] + T * p.background[1];
    p.out_rgb[3 * o + 2] = rgb[2] + T * p.background[2];
    p.out_alpha[o] = a;
    p.out_depth[o] = a > 0.f ? depth_acc / fmaxf(a, 1e-12f) : 0.f;
    p.out_median_depth[o] = median_depth;
}
