// Rasterize: front-to-back blending, one thread block per tile, one thread per pixel.
//
// Contract (contiguous, row-major; EV = E * V, T = tiles_x * tiles_y):
//   means2d   f32[EV,2], conics f32[EV,3], depths f32[EV]   from project
//   opacities f32[V]                                          per visible Gaussian
//   colors    f32[EV,3]                                       from shade
//   gaussian_ids i32[I]     visible-Gaussian index of each sorted intersection
//   ranges    i32[E*T,2]    [start, end) of each tile's intersections
//   background f32[3]
//   out_rgb   f32[E,H,W,3], out_alpha f32[E,H,W], out_depth f32[E,H,W]   out
// Launch: grid (tiles_x, tiles_y, E), block (tile_px, tile_px), dynamic shared memory
// tile_px^2 * 10 floats (one batch of splats: centre 2, conic 3, opacity 1, colour 3, depth 1).
// Each block walks its tile's list in batches of tile_px^2 splats that its threads load into
// shared memory together; a pixel stops at the splat that would take its transmittance below
// t_min (gs_blend), and the block stops when all its pixels have.
#include "common.cuh"

extern "C" __global__ void rasterize_kernel(int E, int V, const float* __restrict__ means2d,
                                            const float* __restrict__ conics, const float* __restrict__ opacities,
                                            const float* __restrict__ colors, const float* __restrict__ depths,
                                            const int* __restrict__ gaussian_ids, const int* __restrict__ ranges,
                                            int tiles_x, int tiles_y, int width, int height, float alpha_max,
                                            float alpha_min, float t_min, const float* __restrict__ background,
                                            float* __restrict__ out_rgb, float* __restrict__ out_alpha,
                                            float* __restrict__ out_depth) {
    extern __shared__ float batch[];
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
    float* s_z = batch + 9 * n;

    const int eye = blockIdx.z;
    const long long tile = (long long)eye * tiles_x * tiles_y + (long long)blockIdx.y * tiles_x + blockIdx.x;
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    const int tid = threadIdx.y * blockDim.x + threadIdx.x;
    const bool inside = x < width && y < height;
    const float px = (float)x + 0.5f, py = (float)y + 0.5f;

    const int start = ranges[2 * tile], end = ranges[2 * tile + 1];
    float T = 1.f, depth_acc = 0.f;
    float rgb[3] = {0.f, 0.f, 0.f};
    bool done = !inside;

    for (int base = start; base < end; base += n) {
        // Stop the whole tile once every pixel is finished.
        if (__syncthreads_count(done) == n) break;
        const int idx = base + tid;
        if (idx < end) {
            const int g = gaussian_ids[idx];
            const long long f = (long long)eye * V + g;
            s_mx[tid] = means2d[2 * f];
            s_my[tid] = means2d[2 * f + 1];
            s_A[tid] = -0.5f * conics[3 * f];
            s_Bn[tid] = -conics[3 * f + 1];
            s_C[tid] = -0.5f * conics[3 * f + 2];
            s_op[tid] = opacities[g];
            s_r[tid] = colors[3 * f];
            s_g[tid] = colors[3 * f + 1];
            s_b[tid] = colors[3 * f + 2];
            s_z[tid] = depths[f];
        }
        __syncthreads();
        const int count = min(n, end - base);
        for (int j = 0; j < count && !done; ++j) {
            const float alpha = gs_splat_alpha(s_mx[j] - px, s_my[j] - py, s_A[j], s_Bn[j], s_C[j], s_op[j],
                                               alpha_max, alpha_min);
            if (alpha == 0.f) continue;
            const float color[3] = {s_r[j], s_g[j], s_b[j]};
            if (!gs_blend(alpha, T, t_min, color, s_z[j], rgb, depth_acc)) done = true;
        }
    }
    if (!inside) return;
    const long long o = ((long long)eye * height + y) * width + x;
    const float a = 1.f - T;
    out_rgb[3 * o] = rgb[0] + T * background[0];
    out_rgb[3 * o + 1] = rgb[1] + T * background[1];
    out_rgb[3 * o + 2] = rgb[2] + T * background[2];
    out_alpha[o] = a;
    out_depth[o] = a > 0.f ? depth_acc / fmaxf(a, 1e-12f) : 0.f;
}
