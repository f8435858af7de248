// gscache shared math: compiled by nvcc and NVRTC for the GPU (cuda backend) and by the host C++
// compiler for the CPU (cpu backend, and the SIMT emulation of the kernels: simt/simt.hpp).
// Every build compiles with -I<this folder>, so every file includes it as "common.cuh".
//
// One arithmetic, two kinds of host path (what the tests hold each to):
//   * The kernels of cuda/kernels/*.cu run these device functions on the GPU, and the same code
//     on the host under the SIMT emulation (backend "cuda-sim"), so every function here, and
//     every kernel, executes in CI and is compared with the torch reference.
//   * host/host.cpp (backend "cpu") calls the same functions for cull, shade, project and the
//     tile rectangles, but keeps two separate, faster implementations: its rasterizer blends
//     4x4-pixel blocks as 16-lane vectors (gs_splat_alpha, gs_exp and gs_blend's rule re-stated
//     in vector form, bit for bit the same arithmetic) and binning by a radix sort of depths and
//     a counting sort by tile, without a key sort; its derivation evaluates four anchors
//     at once (mlp_eval4) instead of gs_mlp_eval. Those are tested against the reference as
//     implementations of their own.
//
// Conventions (as gscache/camera.py and gscache/records.py):
//   * OpenCV camera axes (x right, y down, z forward); viewmat = T_cam_world, row-major 4x4.
//   * K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]; pixel (i, j) has its centre at (i + 0.5, j + 0.5).
//   * Gaussians: quats (w, x, y, z), unit; scales linear; covariance upper triangle
//     (xx, xy, xz, yy, yz, zz); conic (a, b, c) = inverse 2D covariance [[a, b], [b, c]].
//   * Intersection sort key, 64-bit:
//       bits 63..32  global tile id = eye * T + tile_y * tiles_x + tile_x
//       bits 31..0   float32 bit pattern of the view-space depth (> 0, so it orders like the float)
//     (tests/backends/test_kernel_contract.py checks this agrees with gscache/records.py).
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define GS_HD __host__ __device__ __forceinline__
#else
#define GS_HD inline __attribute__((always_inline))
#endif
// NVRTC has no standard library; nvcc's host pass and the host compiler need it. Device code
// (__CUDA_ARCH__ defined) uses CUDA's own math and intrinsics.
#if !defined(__CUDACC_RTC__)
#include <cmath>
#include <cstring>
using std::isfinite;
#endif

#define GS_TILE_KEY_SHIFT 32

// Dynamic shared memory of a kernel: `extern __shared__` on the GPU; under the SIMT emulation
// (simt.hpp) the block's buffer, allocated by the emulator per block.
#if defined(GS_SIMT)
#define GS_DYNAMIC_SHARED(T, name) T* name = static_cast<T*>(gs_simt::dynamic_shared())
#else
#define GS_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif

// Real SH constants, as gscache/sh.py (basis and signs of Inria's 3DGS).
#define GS_SH_C0 0.28209479177387814f
#define GS_SH_C1 0.4886025119029199f
#define GS_SH_C2_0 1.0925484305920792f
#define GS_SH_C2_1 -1.0925484305920792f
#define GS_SH_C2_2 0.31539156525252005f
#define GS_SH_C2_3 -1.0925484305920792f
#define GS_SH_C2_4 0.5462742152960396f
#define GS_SH_C3_0 -0.5900435899266435f
#define GS_SH_C3_1 2.890611442640554f
#define GS_SH_C3_2 -0.4570457994644658f
#define GS_SH_C3_3 0.3731763325901154f
#define GS_SH_C3_4 -0.4570457994644658f
#define GS_SH_C3_5 1.445305721320277f
#define GS_SH_C3_6 -0.5900435899266435f

// The Jacobian of the projection is evaluated at most 30% beyond the image border.
#define GS_FOV_CLAMP 1.3f

// Floats per splat in rasterize_kernel's shared-memory batch (centre 2, conic 3, opacity 1,
// colour 3, depth 1): the launch asks for tile_px^2 * GS_SPLAT_FLOATS * 4 bytes.
#define GS_SPLAT_FLOATS 10

// One view of the batch: T_cam_world (rows 0..2 of the 4x4), intrinsics and image size.
struct GsView {
    float R[9];  // row-major rotation of T_cam_world
    float t[3];  // translation of T_cam_world
    float fx, fy, cx, cy;
    int width, height;
    float near_m, far_m;
};

// ---- Launch parameters -------------------------------------------------------------------
// One struct per kernel family, passed by value (as nvdiffrast's rasterize.h does), filled by
// the cuda backend (a CuPy launch), the cpu library (host.cpp, by pointer) and the SIMT
// emulation alike, and mirrored once in Python (gscache/backends/_params.py; a test compares
// every field's offset and the size). Pointers are device addresses on the GPU, host ones
// otherwise; pointers come first, then 64-bit and 32-bit scalars, so no layout has hidden padding.
// Shapes (contiguous, row-major; E views, N scene Gaussians, V visible, K SH coefficients, I
// intersections, T tiles per view) are in the comment of each kernel's file.

struct GsCullParams {  // host.cpp only: the cuda backend culls with the torch reference
    const float* means;
    const float* scales;
    const GsView* views;
    unsigned char* keep;
    long long N;
    int E;
    float eps2d, extent_sigma, margin_px;
};

struct GsReprojectParams {  // gscache/stages/reproject.py is the reference
    const float* rgb;               // [Hs,Ws,3] the source view
    const float* alpha;             // [Hs,Ws]
    const float* median;            // [Hs,Ws] median depth, 0: none
    const double* dst_from_src;     // [12] rows of the 3x4 transform source camera -> target camera
    const double* src_from_dst;     // [12] its inverse
    const double* src_K;            // [4] fx, fy, cx, cy
    const double* dst_K;            // [4]
    unsigned long long* zbuf;       // [H*W] scratch: float64 bits of the nearest splatted depth
    double* zfill;                  // [H*W] scratch: the depth after the crack fill (inf: none)
    float* out_rgb;                 // [H,W,3]
    float* out_alpha;               // [H,W]
    float* out_depth;               // [H,W]
    unsigned char* out_valid;       // [H,W]
    int src_width, src_height, width, height;
    double depth_tolerance;
};

// Pixel reuse (gscache/stages/reuse.py is the reference): per-tile statistics of a warp, and the
// composite of a warp with a rasterized view. One call per tile.
#define GS_TILE_STATS 8  // floats per tile: n_valid, z_min, z_max, sum_lum, sum_lum2, sum_lap2, sum_grad2, sum_trans2

struct GsTileStatsParams {
    const float* rgb;               // [H,W,3] the warp
    const float* alpha;             // [H,W]
    const float* depth;             // [H,W]
    const unsigned char* valid;     // [H,W]
    float* stats;                   // [T,GS_TILE_STATS] out
    int width, height, tile_px, tiles_x, tiles_y;
};

struct GsReuseCompositeParams {
    const float* w_rgb;             // [H,W,3] the warp
    const float* w_alpha;           // [H,W]
    const float* w_depth;           // [H,W]
    const unsigned char* valid;     // [H,W]
    const unsigned char* reused;    // [T] tiles taken from the warp
    float* rgb;                     // [H,W,3] the rasterized view, composited in place
    float* alpha;                   // [H,W]
    float* depth;                   // [H,W]
    float* median;                  // [H,W]
    float* truth;                   // [T,2] out: sum of squared differences over valid pixels, count
    int width, height, tile_px, tiles_x, tiles_y;
};

// Foveation: the fovea's exact pixels over the upsampled periphery (gscache/stages/foveate.py's
// composite is the reference), written in place into the fovea pass's images (their exact
// rectangle is already the result: it is neither read nor written). One call per pixel.
struct GsFoveaCompositeParams {
    float* rgb;             // [E,H,W,3] the fovea pass at full resolution, in: its pixels, out: the composite
    float* alpha;           // [E,H,W]
    float* depth;           // [E,H,W]
    float* median;          // [E,H,W] or null (no median depth: the output has none)
    const float* p_rgb;     // [E,h,w,3] the periphery pass
    const float* p_alpha;   // [E,h,w]
    const float* p_depth;   // [E,h,w]
    const float* p_median;  // [E,h,w] or null (with median)
    const int* rects;       // [E,4] each eye's exact rectangle x0, y0, x1, y1 (full-resolution pixels)
    int E, width, height, p_width, p_height, band_px;
};

struct GsShadeParams {
    const float* means;
    const float* quats;
    const float* scales;
    const float* sh;
    const float* positions;
    float* covars;
    float* colors;
    int E, V, K, degree;
};

struct GsProjectParams {
    const float* means;
    const float* covars;
    const GsView* views;
    float* means2d;
    float* conics;
    float* depths;
    int* radii;
    int E, V;
    float eps2d, extent_sigma;
};

struct GsScaleProjectionParams {  // gscache/stages/project.py's scale_projection is the reference
    const float* means2d;   // [E,V,2] the projection into the views at the higher resolution
    const float* conics;    // [E,V,3]
    const float* depths;    // [E,V] (shared by both projections)
    const GsView* views;    // [E] the views at the lower resolution (size and clip planes)
    float* out_means2d;     // [E,V,2]
    float* out_conics;      // [E,V,3]
    int* out_radii;         // [E,V,2]
    int E, V;
    float sx, sy;           // lower width / higher width, and the heights'
    float eps2d, extent_sigma;
};

struct GsBinParams {
    const float* means2d;      // [E*V,2]
    const int* radii;          // [E*V,2]
    const float* depths;       // [E*V]
    int* counts;               // [E*V]: written by the count kernel, read by host.cpp's sorted binning
    const long long* offsets;  // [E*V]: where each (view, Gaussian)'s keys start (emit)
    long long* keys;           // [I]: written by emit, read (sorted) by tile_ranges
    int* ids;                  // [I]: emit: flat ids eye * V + gaussian; host.cpp: gaussian ids 0..V-1
    int* ranges;               // [E*T,2]: written by tile_ranges
    long long n_isect;         // I
    int E, V, tile_px, tiles_x, tiles_y;
    int shared_depth;          // host.cpp: one depth order for every view
};

struct GsRasterParams {
    const float* means2d;       // [E*V,2]
    const float* conics;        // [E*V,3]
    const float* opacities;     // [V]
    const float* colors;        // [E*V,3]
    const float* depths;        // [E*V]
    const int* gaussian_ids;    // [I] in key order, 0..V-1
    const int* ranges;          // [E*T,2]
    const float* background;    // [3]
    float* out_rgb;             // [E,H,W,3]
    float* out_alpha;           // [E,H,W]
    float* out_depth;           // [E,H,W]
    float* out_median_depth;    // [E,H,W]
    const unsigned char* pixel_mask;  // [E,H,W] or null: the pixels wanted (others: any value)
    int E, V, tile_px, tiles_x, tiles_y, width, height;
    float alpha_max, alpha_min, t_min;
};

struct GsDeriveParams {
    const long long* ids;       // [n] visible anchors
    const float* anchors;       // [A,3]
    const float* features;      // [A,F]
    const float* levels;        // [A]
    const float* offsets;       // [A,k,3]
    const float* scales;        // [A,6]
    const float* viewpoint;     // [3]
    const int* layers;          // [L,4]
    const int* mlps;            // [9]
    const float* weights;       // [W]
    float* opac;                // [n,k]: written by count, read by emit
    int* counts;                // [n]: written by count, read by emit
    const long long* starts;    // [n]: exclusive prefix sum of counts (emit)
    float* means;               // [M,3]
    float* quats;               // [M,4]
    float* out_scales;          // [M,3]
    float* opacities;           // [M]
    float* sh;                  // [M,1,3]
    long long n;
    int F, k, add_level;
    int n_weights, use_shared;  // cuda: copy the weights to shared memory when use_shared is 1
};

GS_HD unsigned int gs_float_bits(float f) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    unsigned int u;
    std::memcpy(&u, &f, sizeof u);
    return u;
#endif
}

GS_HD float gs_min(float a, float b) { return a < b ? a : b; }
GS_HD float gs_max(float a, float b) { return a > b ? a : b; }
GS_HD int gs_clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Covariance R S S^T R^T of a unit quaternion q = (w, x, y, z) and scales s; out: 6 floats.
GS_HD void gs_quat_scale_to_covar(const float* q, const float* s, float* cov) {
    const float w = q[0], x = q[1], y = q[2], z = q[3];
    const float R[9] = {
        1.f - 2.f * (y * y + z * z), 2.f * (x * y - w * z), 2.f * (x * z + w * y),
        2.f * (x * y + w * z), 1.f - 2.f * (x * x + z * z), 2.f * (y * z - w * x),
        2.f * (x * z - w * y), 2.f * (y * z + w * x), 1.f - 2.f * (x * x + y * y)};
    float M[9];  // R * diag(s)
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) M[3 * i + j] = R[3 * i + j] * s[j];
    const int rows[6] = {0, 0, 0, 1, 1, 2}, cols[6] = {0, 1, 2, 1, 2, 2};
    for (int k = 0; k < 6; ++k) {
        const float* a = M + 3 * rows[k];
        const float* b = M + 3 * cols[k];
        cov[k] = a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    }
}

// SH colour of coefficients sh[K][3] seen along direction d (need not be unit), degree <= 3:
// max(0, sum_k Y_k(d/|d|) sh[k] + 0.5).
GS_HD void gs_eval_sh(int degree, const float* sh, float dx, float dy, float dz, float* rgb) {
    float n = sqrtf(dx * dx + dy * dy + dz * dz);
    n = gs_max(n, 1e-12f);
    const float x = dx / n, y = dy / n, z = dz / n;
    float basis[16];
    basis[0] = GS_SH_C0;
    int k = 1;
    if (degree >= 1) {
        basis[1] = -GS_SH_C1 * y;
        basis[2] = GS_SH_C1 * z;
        basis[3] = -GS_SH_C1 * x;
        k = 4;
    }
    if (degree >= 2) {
        const float xx = x * x, yy = y * y, zz = z * z, xy = x * y, yz = y * z, xz = x * z;
        basis[4] = GS_SH_C2_0 * xy;
        basis[5] = GS_SH_C2_1 * yz;
        basis[6] = GS_SH_C2_2 * (2.f * zz - xx - yy);
        basis[7] = GS_SH_C2_3 * xz;
        basis[8] = GS_SH_C2_4 * (xx - yy);
        k = 9;
        if (degree >= 3) {
            basis[9] = GS_SH_C3_0 * y * (3.f * xx - yy);
            basis[10] = GS_SH_C3_1 * xy * z;
            basis[11] = GS_SH_C3_2 * y * (4.f * zz - xx - yy);
            basis[12] = GS_SH_C3_3 * z * (2.f * zz - 3.f * xx - 3.f * yy);
            basis[13] = GS_SH_C3_4 * x * (4.f * zz - xx - yy);
            basis[14] = GS_SH_C3_5 * z * (xx - yy);
            basis[15] = GS_SH_C3_6 * x * (xx - 3.f * yy);
            k = 16;
        }
    }
    for (int c = 0; c < 3; ++c) {
        float acc = 0.f;
        for (int i = 0; i < k; ++i) acc += basis[i] * sh[3 * i + c];
        rgb[c] = gs_max(acc + 0.5f, 0.f);
    }
}

// A splat's conic[3] and radii[2] (0 when not drawn) from its 2D covariance [[a, b], [b, c]]
// (low-pass term included), centre means2d[2] and depth z in view v.
GS_HD void gs_splat(float a, float b, float c, const float* means2d, float z, const GsView& v, float extent_sigma,
                    float* conic, int* radii) {
    const float det = a * c - b * b;
    const float det_safe = gs_max(det, 1e-10f);
    conic[0] = c / det_safe;
    conic[1] = -b / det_safe;
    conic[2] = a / det_safe;
    const float rx = ceilf(extent_sigma * sqrtf(gs_max(a, 0.f)));
    const float ry = ceilf(extent_sigma * sqrtf(gs_max(c, 0.f)));
    bool drawn = det > 0.f && z > v.near_m && z < v.far_m;
    drawn = drawn && means2d[0] + rx > 0.f && means2d[0] - rx < (float)v.width;
    drawn = drawn && means2d[1] + ry > 0.f && means2d[1] - ry < (float)v.height;
    drawn = drawn && isfinite(means2d[0]) && isfinite(means2d[1]) && isfinite(conic[0]) && isfinite(conic[1]) &&
            isfinite(conic[2]);
    radii[0] = drawn ? (int)rx : 0;
    radii[1] = drawn ? (int)ry : 0;
}

// EWA projection of one Gaussian (centre p, covariance cov6) into view v.
// Writes means2d[2], conic[3], depth, radii[2]; radii are 0 when the Gaussian is not drawn.
GS_HD void gs_project(const float* p, const float* cov6, const GsView& v, float eps2d, float extent_sigma,
                      float* means2d, float* conic, float* depth, int* radii) {
    const float* R = v.R;
    const float x = R[0] * p[0] + R[1] * p[1] + R[2] * p[2] + v.t[0];
    const float y = R[3] * p[0] + R[4] * p[1] + R[5] * p[2] + v.t[1];
    const float z = R[6] * p[0] + R[7] * p[1] + R[8] * p[2] + v.t[2];
    // Sigma_c = R Sigma R^T
    const float S[9] = {cov6[0], cov6[1], cov6[2], cov6[1], cov6[3], cov6[4], cov6[2], cov6[4], cov6[5]};
    float RS[9], C[9];
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            RS[3 * i + j] = R[3 * i] * S[j] + R[3 * i + 1] * S[3 + j] + R[3 * i + 2] * S[6 + j];
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            C[3 * i + j] = RS[3 * i] * R[3 * j] + RS[3 * i + 1] * R[3 * j + 1] + RS[3 * i + 2] * R[3 * j + 2];
    const float tan_fovx = 0.5f * v.width / v.fx, tan_fovy = 0.5f * v.height / v.fy;
    const float lim_x_pos = (v.width - v.cx) / v.fx + (GS_FOV_CLAMP - 1.f) * tan_fovx;
    const float lim_x_neg = v.cx / v.fx + (GS_FOV_CLAMP - 1.f) * tan_fovx;
    const float lim_y_pos = (v.height - v.cy) / v.fy + (GS_FOV_CLAMP - 1.f) * tan_fovy;
    const float lim_y_neg = v.cy / v.fy + (GS_FOV_CLAMP - 1.f) * tan_fovy;
    const float tx = z * gs_min(gs_max(x / z, -lim_x_neg), lim_x_pos);
    const float ty = z * gs_min(gs_max(y / z, -lim_y_neg), lim_y_pos);
    const float J[6] = {v.fx / z, 0.f, -v.fx * tx / (z * z), 0.f, v.fy / z, -v.fy * ty / (z * z)};
    float JC[6];  // J Sigma_c, 2x3
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
            JC[3 * i + j] = J[3 * i] * C[j] + J[3 * i + 1] * C[3 + j] + J[3 * i + 2] * C[6 + j];
    const float c00 = JC[0] * J[0] + JC[1] * J[1] + JC[2] * J[2];
    const float c01 = JC[0] * J[3] + JC[1] * J[4] + JC[2] * J[5];
    const float c10 = JC[3] * J[0] + JC[4] * J[1] + JC[5] * J[2];
    const float c11 = JC[3] * J[3] + JC[4] * J[4] + JC[5] * J[5];
    const float a = c00 + eps2d, b = 0.5f * (c01 + c10), c = c11 + eps2d;
    means2d[0] = v.fx * x / z + v.cx;
    means2d[1] = v.fy * y / z + v.cy;
    *depth = z;
    gs_splat(a, b, c, means2d, z, v, extent_sigma, conic, radii);
}

// Scale projection: a view's projection derived from the projection into the same view at a
// higher resolution (gscache/stages/project.py's scale_projection is the reference), for a
// foveated frame's periphery views. One call per (view, Gaussian).
GS_HD void gs_scale_projection(const GsScaleProjectionParams& p, long long f) {
    const GsView& v = p.views[f / p.V];
    const float* q = p.conics + 3 * f;
    // The 2D covariance from its inverse, in double: an elongated splat's conic is
    // ill-conditioned to invert in float.
    const double A = q[0], B = q[1], C = q[2];
    const double det_conic = A * C - B * B;
    const double inv = det_conic > 0.0 ? 1.0 / det_conic : 0.0;
    const double sx = p.sx, sy = p.sy, eps = p.eps2d;
    const float a = (float)(sx * sx * (C * inv - eps) + eps);
    const float b = (float)(sx * sy * (-B * inv));
    const float c = (float)(sy * sy * (A * inv - eps) + eps);
    float* m = p.out_means2d + 2 * f;
    m[0] = p.means2d[2 * f] * p.sx;
    m[1] = p.means2d[2 * f + 1] * p.sy;
    gs_splat(a, b, c, m, p.depths[f], v, p.extent_sigma, p.out_conics + 3 * f, p.out_radii + 2 * f);
}

// Cull test of one Gaussian (centre p, largest scale s_max) against one view: false only when the
// Gaussian cannot reach the image (margin_px wider), so culling never changes a picture. It bounds
// gs_project's radii without the covariance: the Jacobian row (fx/z, 0, -fx x/z^2) has norm
// fx/z sqrt(1 + (x/z)^2) with x/z clamped to lim_x, so radius_x <= ceil(k sqrt(s^2 (fx/z)^2
// (1 + lim_x^2) + eps2d)); one more pixel absorbs rounding (gscache/stages/cull.py is the spec).
GS_HD bool gs_cull_keep(const float* p, float s_max, const GsView& v, float eps2d, float extent_sigma,
                        float margin_px) {
    const float* R = v.R;
    const float x = R[0] * p[0] + R[1] * p[1] + R[2] * p[2] + v.t[0];
    const float y = R[3] * p[0] + R[4] * p[1] + R[5] * p[2] + v.t[1];
    const float z = R[6] * p[0] + R[7] * p[1] + R[8] * p[2] + v.t[2];
    if (!(z > v.near_m && z < v.far_m)) return false;
    const float tan_fovx = 0.5f * v.width / v.fx, tan_fovy = 0.5f * v.height / v.fy;
    const float lim_x = gs_max((v.width - v.cx) / v.fx, v.cx / v.fx) + (GS_FOV_CLAMP - 1.f) * tan_fovx;
    const float lim_y = gs_max((v.height - v.cy) / v.fy, v.cy / v.fy) + (GS_FOV_CLAMP - 1.f) * tan_fovy;
    const float u = v.fx * x / z + v.cx, w = v.fy * y / z + v.cy;
    const float sx = s_max * v.fx / z, sy = s_max * v.fy / z;
    const float rx = ceilf(extent_sigma * sqrtf(sx * sx * (1.f + lim_x * lim_x) + eps2d)) + 1.f + margin_px;
    const float ry = ceilf(extent_sigma * sqrtf(sy * sy * (1.f + lim_y * lim_y) + eps2d)) + 1.f + margin_px;
    return u + rx > 0.f && u - rx < (float)v.width && w + ry > 0.f && w - ry < (float)v.height;
}

// Half-open tile rectangle [lo, hi) touched by a splat (gsplat's isect_tiles rule), clamped to
// the grid; returns the number of tiles (0 when radii are 0).
GS_HD int gs_tile_rect(float mx, float my, int rx, int ry, int tile_px, int tiles_x, int tiles_y, int* lo, int* hi) {
    const float inv = 1.f / (float)tile_px;  // exact: tile_px is a power of two
    lo[0] = gs_clamp_int((int)floorf(mx * inv - (float)rx * inv), 0, tiles_x);
    lo[1] = gs_clamp_int((int)floorf(my * inv - (float)ry * inv), 0, tiles_y);
    hi[0] = gs_clamp_int((int)ceilf(mx * inv + (float)rx * inv), 0, tiles_x);
    hi[1] = gs_clamp_int((int)ceilf(my * inv + (float)ry * inv), 0, tiles_y);
    if (rx <= 0 || ry <= 0) return 0;
    return (hi[0] - lo[0]) * (hi[1] - lo[1]);
}

// The first index i in keys[0, n) (sorted by tile id, the key's high bits) whose tile is >= tile;
// n when there is none. Tile ranges are [first(t), first(t + 1)), so an empty tile gets (k, k)
// with k the number of intersections of the tiles before it (the contract in gscache/records.py).
GS_HD long long gs_tile_lower_bound(const long long* keys, long long n, long long tile) {
    long long lo = 0, hi = n;
    while (lo < hi) {
        const long long mid = lo + (hi - lo) / 2;
        if ((keys[mid] >> GS_TILE_KEY_SHIFT) < tile)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

// exp(x) for the blending step. On the GPU the library expf; on the host a Cephes-style
// polynomial (about 1 ulp on [-87, 0]) that, unlike a call into libm, vectorises across pixels.
GS_HD float gs_exp(float x) {
#if defined(__CUDA_ARCH__)
    return expf(x);
#else
    x = gs_max(x, -87.f);
    const float n = floorf(x * 1.44269504088896341f + 0.5f);
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float y = p * r * r + r + 1.f;
    const int bits = ((int)n + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return y * scale;
#endif
}

// Alpha of a splat at offset (dx, dy) = centre - pixel centre; 0 when it is skipped there
// (power > 0, or alpha below alpha_min). conic_s = (A, Bn, C) = (-a/2, -b, -c/2), so that
// power = dx (A dx + Bn dy) + C dy^2.
GS_HD float gs_splat_alpha(float dx, float dy, float A, float Bn, float C, float opacity, float alpha_max,
                           float alpha_min) {
    const float power = dx * (A * dx + Bn * dy) + C * (dy * dy);
    const float alpha = gs_min(alpha_max, opacity * gs_exp(power));
    // Two selects rather than a branch, so that the host compiler vectorises it across pixels.
    const float kept = power > 0.f ? 0.f : alpha;
    return kept < alpha_min ? 0.f : kept;
}

// The transmittance whose crossing gives a pixel's median depth (MEDIAN_T of
// gscache/stages/rasterize.py): the depth of the blended splat that takes T from above it to it
// or below, where the accumulated opacity first reaches one half; 0 where no splat does.
#define GS_MEDIAN_T 0.5f

// One front-to-back blending step of a pixel. Returns false, blending nothing, when the splat
// would take the transmittance T below t_min: the pixel is then finished.
GS_HD bool gs_blend(float alpha, float& T, float t_min, const float* color, float depth, float* rgb_acc,
                    float& depth_acc, float& median_depth) {
    const float T_next = T * (1.f - alpha);
    if (T_next < t_min) return false;
    const float w = alpha * T;
    rgb_acc[0] += w * color[0];
    rgb_acc[1] += w * color[1];
    rgb_acc[2] += w * color[2];
    depth_acc += w * depth;
    median_depth = (T > GS_MEDIAN_T && T_next <= GS_MEDIAN_T) ? depth : median_depth;
    T = T_next;
    return true;
}

// ---- Reproject: a rendered view carried into another (gscache/stages/reproject.py) --------
// In float64, the reference's own steps, so that the kernels agree with it but where a point lands
// within rounding of a pixel edge. The depth splat keeps the nearest depth of each target pixel as
// the bits of a positive double (which order like the doubles) by an atomic minimum.
#define GS_REPROJECT_EMPTY 0x7ff0000000000000ULL  // +inf: no depth

GS_HD unsigned long long gs_double_bits(double d) {
#if defined(__CUDA_ARCH__)
    return (unsigned long long)__double_as_longlong(d);
#else
    unsigned long long u;
    std::memcpy(&u, &d, sizeof u);
    return u;
#endif
}

GS_HD double gs_bits_double(unsigned long long u) {
#if defined(__CUDA_ARCH__)
    return __longlong_as_double((long long)u);
#else
    double d;
    std::memcpy(&d, &u, sizeof d);
    return d;
#endif
}

GS_HD void gs_atomic_min_u64(unsigned long long* slot, unsigned long long v) {
#if defined(__CUDA_ARCH__)
    atomicMin(slot, v);
#else
    unsigned long long seen = __atomic_load_n(slot, __ATOMIC_RELAXED);
    while (v < seen && !__atomic_compare_exchange_n(slot, &seen, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
#endif
}

// The point at depth z through the centre of pixel (u, v) of a camera with intrinsics K (fx, fy,
// cx, cy), carried by the 3x4 transform M: out = M [x y z 1]^T.
GS_HD void gs_reproject_carry(const double* K, double u, double v, double z, const double* M, double* out) {
    const double x = (u + 0.5 - K[2]) / K[0] * z, y = (v + 0.5 - K[3]) / K[1] * z;
    for (int r = 0; r < 3; ++r) out[r] = M[4 * r] * x + M[4 * r + 1] * y + M[4 * r + 2] * z + M[4 * r + 3];
}

// Step 1 for source pixel (u, v): its depth into the target pixel that contains its point.
GS_HD void gs_reproject_splat(const GsReprojectParams& p, int u, int v) {
    const float z = p.median[(long long)v * p.src_width + u];
    if (!(z > 0.f)) return;
    double q[3];
    gs_reproject_carry(p.src_K, u, v, z, p.dst_from_src, q);
    if (!(q[2] > 0.0)) return;
    const double x = floor(p.dst_K[0] * q[0] / q[2] + p.dst_K[2]), y = floor(p.dst_K[1] * q[1] / q[2] + p.dst_K[3]);
    if (!(x >= 0.0 && x < p.width && y >= 0.0 && y < p.height)) return;
    gs_atomic_min_u64(p.zbuf + (long long)y * p.width + (long long)x, gs_double_bits(q[2]));
}

// Step 2 for target pixel i: an empty pixel with two or more 4-neighbours that have a depth takes
// the farthest of them (a crack at a silhouette then takes the background, which step 3 refuses).
GS_HD void gs_reproject_fill(const GsReprojectParams& p, long long i) {
    double z = gs_bits_double(p.zbuf[i]);
    if (p.zbuf[i] == GS_REPROJECT_EMPTY) {
        const int x = (int)(i % p.width), y = (int)(i / p.width);
        const long long nb[4] = {y > 0 ? i - p.width : -1, y + 1 < p.height ? i + p.width : -1, x > 0 ? i - 1 : -1,
                                 x + 1 < p.width ? i + 1 : -1};
        int have = 0;
        double farthest = 0.0;
        for (int k = 0; k < 4; ++k) {
            if (nb[k] < 0 || p.zbuf[nb[k]] == GS_REPROJECT_EMPTY) continue;
            const double zn = gs_bits_double(p.zbuf[nb[k]]);
            farthest = have++ ? (zn > farthest ? zn : farthest) : zn;
        }
        if (have >= 2) z = farthest;
    }
    p.zfill[i] = z;
}

// Step 3 for target pixel i: back into the source, bilinear where all four taps' median depths
// agree with the point's own source depth within depth_tolerance (relative).
GS_HD void gs_reproject_sample(const GsReprojectParams& p, long long i) {
    const double z = p.zfill[i];
    const bool has = gs_double_bits(z) != GS_REPROJECT_EMPTY;
    float rgba[4] = {0.f, 0.f, 0.f, 0.f};
    bool ok = false;
    if (has) {
        double q[3];
        gs_reproject_carry(p.dst_K, (double)(i % p.width), (double)(i / p.width), z, p.src_from_dst, q);
        const double zs = q[2];
        const double xs = p.src_K[0] * q[0] / zs + p.src_K[2] - 0.5, ys = p.src_K[1] * q[1] / zs + p.src_K[3] - 0.5;
        const double x0 = floor(xs), y0 = floor(ys);
        ok = zs > 0.0 && x0 >= 0.0 && x0 + 1 < p.src_width && y0 >= 0.0 && y0 + 1 < p.src_height;
        if (ok) {
            const double fx = xs - x0, fy = ys - y0;
            const long long t00 = (long long)y0 * p.src_width + (long long)x0;
            const long long taps[4] = {t00, t00 + 1, t00 + p.src_width, t00 + p.src_width + 1};
            const double w[4] = {(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy};
            double acc[4] = {0.0, 0.0, 0.0, 0.0};
            for (int k = 0; k < 4; ++k) {
                const double zt = p.median[taps[k]];
                ok = ok && zt > 0.0 && fabs(zt - zs) <= p.depth_tolerance * zs;
                for (int c = 0; c < 3; ++c) acc[c] += w[k] * (double)p.rgb[3 * taps[k] + c];
                acc[3] += w[k] * (double)p.alpha[taps[k]];
            }
            if (ok)
                for (int c = 0; c < 4; ++c) rgba[c] = (float)acc[c];
        }
    }
    p.out_depth[i] = has ? (float)z : 0.f;
    p.out_valid[i] = ok;
    for (int c = 0; c < 3; ++c) p.out_rgb[3 * i + c] = rgba[c];
    p.out_alpha[i] = rgba[3];
}

// ---- Foveation: the composite (gscache/stages/foveate.py composite, the reference) -----------
// In float32, in the reference's steps: torch's bilinear upsampling with align_corners=False (a
// full-size pixel centre samples (i + 0.5) * h / H - 0.5, clamped at 0; the far neighbour
// clamped to the last row or column), nearest-exact for median depths (floor((i + 0.5) * h / H)),
// the band's smoothstep weight (FoveaLayout.weights), and lerp as torch computes it (from the
// nearer end, so that a weight of 1 gives the fovea's value exactly).

// The fovea's weight along one axis at pixel i: 1 inside [a, b), a smoothstep over ``band``
// pixels beyond it, 0 further out (_axis_weight).
GS_HD float gs_fovea_axis_weight(int a, int b, int i, int band) {
    const float c = (float)i + 0.5f;
    float outside = (float)a - c > c - (float)b ? (float)a - c : c - (float)b;
    outside = outside > 0.f ? outside : 0.f;
    if (band == 0) return outside == 0.f ? 1.f : 0.f;
    float t = 1.f - outside / (float)band;
    t = t < 0.f ? 0.f : (t > 1.f ? 1.f : t);
    return t * t * (3.f - 2.f * t);
}

GS_HD float gs_lerp(float from, float to, float w) {
    return w < 0.5f ? from + w * (to - from) : to - (to - from) * (1.f - w);
}

// One source coordinate of the bilinear upsampling from n to N samples: (index, far neighbour,
// weight of the far one).
GS_HD void gs_upsample_axis(int i, int n, int N, int* i0, int* i1, float* l1) {
    const float scale = (float)n / (float)N;
    float src = scale * ((float)i + 0.5f) - 0.5f;
    src = src < 0.f ? 0.f : src;
    int k = (int)src;
    k = k < n - 1 ? k : n - 1;
    *i0 = k;
    *i1 = k < n - 1 ? k + 1 : k;
    float l = src - (float)k;
    *l1 = l < 0.f ? 0.f : (l > 1.f ? 1.f : l);
}

GS_HD void gs_fovea_composite(const GsFoveaCompositeParams& p, long long i) {
    const long long HW = (long long)p.height * p.width;
    const int e = (int)(i / HW);
    const int y = (int)((i % HW) / p.width), x = (int)(i % p.width);
    const int* r = p.rects + 4 * e;
    if (x >= r[0] && x < r[2] && y >= r[1] && y < r[3]) return;  // the fovea's own pixel: already there
    const int b = p.band_px;
    const int ox0 = r[0] - b > 0 ? r[0] - b : 0, oy0 = r[1] - b > 0 ? r[1] - b : 0;
    const int ox1 = r[2] + b < p.width ? r[2] + b : p.width, oy1 = r[3] + b < p.height ? r[3] + b : p.height;
    const bool band = x >= ox0 && x < ox1 && y >= oy0 && y < oy1;
    const float w = band ? gs_fovea_axis_weight(r[0], r[2], x, b) * gs_fovea_axis_weight(r[1], r[3], y, b) : 0.f;
    int x0, x1, y0, y1;
    float lx, ly;
    gs_upsample_axis(x, p.p_width, p.width, &x0, &x1, &lx);
    gs_upsample_axis(y, p.p_height, p.height, &y0, &y1, &ly);
    const long long pe = (long long)e * p.p_height * p.p_width;
    const long long q00 = pe + (long long)y0 * p.p_width + x0, q01 = pe + (long long)y0 * p.p_width + x1;
    const long long q10 = pe + (long long)y1 * p.p_width + x0, q11 = pe + (long long)y1 * p.p_width + x1;
    const float h0 = 1.f - ly, w0 = 1.f - lx;
    for (int c = 0; c < 5; ++c) {
        const float* src = c < 3 ? p.p_rgb : (c == 3 ? p.p_alpha : p.p_depth);
        float* out = c < 3 ? p.rgb : (c == 3 ? p.alpha : p.depth);
        const int s = c < 3 ? 3 : 1, o = c < 3 ? c : 0;
        const float up = h0 * (w0 * src[s * q00 + o] + lx * src[s * q01 + o]) +
                         ly * (w0 * src[s * q10 + o] + lx * src[s * q11 + o]);
        out[s * i + o] = band ? gs_lerp(up, out[s * i + o], w) : up;
    }
    if (p.median != nullptr && !(band && w >= 0.5f)) {
        // Nearest-exact: a median depth is one splat's depth, never a blend.
        int mx = (int)floorf(((float)x + 0.5f) * ((float)p.p_width / (float)p.width));
        int my = (int)floorf(((float)y + 0.5f) * ((float)p.p_height / (float)p.height));
        mx = mx < p.p_width - 1 ? mx : p.p_width - 1;
        my = my < p.p_height - 1 ? my : p.p_height - 1;
        p.median[i] = p.p_median[pe + (long long)my * p.p_width + mx];
    }
}

// ---- Structured scenes: the fused derivation of an anchor's k Gaussians --------------------
// An MLP is a chain of layers, out = act(W x + b). The layers of the three MLPs (opacity, cov,
// colour) lie in one f32 buffer; a layer stores W transposed, [in][out], so that the inner loop
// runs over contiguous outputs (it vectorises without reassociating sums), then b [out]. The
// layer table is i32[L][4] = (in, out, activation, offset into the buffer); the MLP table is
// i32[3][3] = (first layer, layer count, takes the distance) for opacity, cov and colour.
#define GS_ACT_NONE 0
#define GS_ACT_RELU 1
#define GS_ACT_TANH 2
#define GS_ACT_SIGMOID 3
// Widest input or output of any layer (checked by the Python packer).
#define GS_MLP_MAX_WIDTH 256

GS_HD float gs_activate(int act, float v) {
    switch (act) {
        case GS_ACT_RELU: return v > 0.f ? v : 0.f;
        case GS_ACT_TANH: return tanhf(v);
        case GS_ACT_SIGMOID: return 1.f / (1.f + expf(-v));
        default: return v;
    }
}

// Runs layers [first, first + count) on x; a and b are scratch of GS_MLP_MAX_WIDTH floats (not x).
// Returns the output (a or b).
GS_HD const float* gs_mlp_eval(const int* layers, int first, int count, const float* weights, const float* x,
                               float* a, float* b) {
    const float* in = x;
    float* out = a;
    for (int l = first; l < first + count; ++l) {
        const int n_in = layers[4 * l], n_out = layers[4 * l + 1], act = layers[4 * l + 2];
        // Distinct buffers (restrict), so that the host compiler vectorises over the outputs.
        const float* __restrict__ W = weights + layers[4 * l + 3];
        const float* __restrict__ src = in;
        float* __restrict__ dst = out;
        for (int o = 0; o < n_out; ++o) dst[o] = W[n_in * n_out + o];  // the bias
        for (int i = 0; i < n_in; ++i) {
            const float xi = src[i];
            const float* __restrict__ row = W + i * n_out;
            for (int o = 0; o < n_out; ++o) dst[o] += xi * row[o];
        }
        if (act == GS_ACT_RELU)
            for (int o = 0; o < n_out; ++o) dst[o] = dst[o] > 0.f ? dst[o] : 0.f;
        else if (act != GS_ACT_NONE)
            for (int o = 0; o < n_out; ++o) dst[o] = gs_activate(act, dst[o]);
        in = out;
        out = out == a ? b : a;
    }
    return in;
}

// The input of an anchor's MLP, as Octree-GS orders it: feature [F], unit view direction
// (anchor - viewpoint) [3], then the distance if the MLP takes it, then the level if the model
// adds it. Returns the width.
GS_HD int gs_anchor_input(const float* anchor, const float* feature, int F, float level, const float* viewpoint,
                          int with_dist, int add_level, float* x) {
    const float dx = anchor[0] - viewpoint[0], dy = anchor[1] - viewpoint[1], dz = anchor[2] - viewpoint[2];
    const float dist = gs_max(sqrtf(dx * dx + dy * dy + dz * dz), 1e-10f);
    int n = 0;
    for (int f = 0; f < F; ++f) x[n++] = feature[f];
    x[n++] = dx / dist;
    x[n++] = dy / dist;
    x[n++] = dz / dist;
    if (with_dist) x[n++] = dist;
    if (add_level) x[n++] = level;
    return n;
}

// Pass 1 of an anchor: its k opacities (tanh MLP) into opac[k]; returns how many are kept (> 0).
GS_HD int gs_derive_opacity(const float* anchor, const float* feature, int F, float level, const float* viewpoint,
                            int add_level, const int* layers, const int* mlps, const float* weights, int k,
                            float* x, float* a, float* b, float* opac) {
    gs_anchor_input(anchor, feature, F, level, viewpoint, mlps[2], add_level, x);
    const float* y = gs_mlp_eval(layers, mlps[0], mlps[1], weights, x, a, b);
    int kept = 0;
    for (int j = 0; j < k; ++j) {
        opac[j] = y[j];
        kept += y[j] > 0.f;
    }
    return kept;
}

// One kept Gaussian from its anchor and its 7 covariance-MLP outputs c (3 scale logits, a
// quaternion), at row `row`: position = anchor + offset * scales[0:3], scale = scales[3:6] *
// sigmoid(logits), the quaternion normalised.
GS_HD void gs_write_gaussian(const float* anchor, const float* offset, const float* scales, const float* c,
                             float opacity, long long row, float* means, float* quats, float* out_scales,
                             float* opacities) {
    for (int d = 0; d < 3; ++d) {
        means[3 * row + d] = anchor[d] + offset[d] * scales[d];
        out_scales[3 * row + d] = scales[3 + d] * (1.f / (1.f + expf(-c[d])));
    }
    const float n = gs_max(sqrtf(c[3] * c[3] + c[4] * c[4] + c[5] * c[5] + c[6] * c[6]), 1e-12f);
    for (int d = 0; d < 4; ++d) quats[4 * row + d] = c[3 + d] / n;
    opacities[row] = opacity;
}

// Its colour (sigmoid-MLP output rgb in (0, 1)) as an SH degree-0 coefficient.
GS_HD void gs_write_color(const float* rgb, long long row, float* sh) {
    for (int d = 0; d < 3; ++d) sh[3 * row + d] = (rgb[d] - 0.5f) / GS_SH_C0;
}

// Pass 2 of an anchor: its kept Gaussians (opac[j] > 0), written from row `start` on.
// offsets f32[k,3] (in units of scales[0:3]), scales f32[6] (linear). Outputs: means [.,3],
// quats [.,4] (unit, w x y z), out_scales [.,3], opacities [.], sh [.,3] (degree 0).
GS_HD void gs_derive_emit(const float* anchor, const float* offsets, const float* feature, const float* scales, int F,
                          float level, const float* viewpoint, int add_level, const int* layers, const int* mlps,
                          const float* weights, int k, const float* opac, long long start, float* x, float* a,
                          float* b, float* means, float* quats, float* out_scales, float* opacities, float* sh) {
    gs_anchor_input(anchor, feature, F, level, viewpoint, mlps[5], add_level, x);
    const float* cov = gs_mlp_eval(layers, mlps[3], mlps[4], weights, x, a, b);
    long long row = start;
    for (int j = 0; j < k; ++j)
        if (opac[j] > 0.f)
            gs_write_gaussian(anchor, offsets + 3 * j, scales, cov + 7 * j, opac[j], row++, means, quats, out_scales,
                              opacities);
    gs_anchor_input(anchor, feature, F, level, viewpoint, mlps[8], add_level, x);
    const float* rgb = gs_mlp_eval(layers, mlps[6], mlps[7], weights, x, a, b);
    row = start;
    for (int j = 0; j < k; ++j)
        if (opac[j] > 0.f) gs_write_color(rgb + 3 * j, row++, sh);
}

// ---- Pixel reuse: tile statistics and composite ------------------------------------------------

GS_HD float gs_clamp01(float v) { return v < 0.f ? 0.f : (v > 1.f ? 1.f : v); }

// The STATS of tile t of a warp (gscache/stages/reuse.py, tile_stats): sums in double, in pixel
// order, so that the cpu and cuda kernels agree exactly and with the reference within rounding.
GS_HD void gs_tile_stats(const GsTileStatsParams& p, long long t) {
    const int tx = (int)(t % p.tiles_x), ty = (int)(t / p.tiles_x);
    const int x0 = tx * p.tile_px, y0 = ty * p.tile_px;
    const int x1 = x0 + p.tile_px < p.width ? x0 + p.tile_px : p.width;
    const int y1 = y0 + p.tile_px < p.height ? y0 + p.tile_px : p.height;
    double n = 0.0, lum = 0.0, lum2 = 0.0, lap2 = 0.0, grad2 = 0.0, trans2 = 0.0;
    float z_min = INFINITY, z_max = 0.f;
    for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) {
            const long long i = (long long)y * p.width + x;
            if (!p.valid[i]) continue;
            const int xl = x > 0 ? x - 1 : 0, xr = x + 1 < p.width ? x + 1 : x;
            const int yu = y > 0 ? y - 1 : 0, yd = y + 1 < p.height ? y + 1 : y;
            const long long il = (long long)y * p.width + xl, ir = (long long)y * p.width + xr;
            const long long iu = (long long)yu * p.width + x, id = (long long)yd * p.width + x;
            // The pixel and its neighbours in the image are valid (a refused one holds 0, not colour).
            const bool inner = (x == 0 || p.valid[il]) && (x + 1 == p.width || p.valid[ir]) &&
                               (y == 0 || p.valid[iu]) && (y + 1 == p.height || p.valid[id]);
            float lap = 0.f, grad = 0.f, l = 0.f;
            for (int c = 0; c < 3; ++c) {
                const float v = p.rgb[3 * i + c];
                lap += fabsf(p.rgb[3 * ir + c] + p.rgb[3 * il + c] - 2.f * v) +
                       fabsf(p.rgb[3 * id + c] + p.rgb[3 * iu + c] - 2.f * v);
                grad += fabsf(p.rgb[3 * ir + c] - p.rgb[3 * il + c]) + fabsf(p.rgb[3 * id + c] - p.rgb[3 * iu + c]);
                l += v;
            }
            lap = inner ? lap / 3.f / 8.f : 0.f;
            grad = inner ? grad / 3.f / 2.f : 0.f;
            l /= 3.f;
            const float z = p.depth[i], tr = 1.f - p.alpha[i];
            n += 1.0;
            z_min = z < z_min ? z : z_min;
            z_max = z > z_max ? z : z_max;
            lum += l;
            lum2 += (double)l * l;
            lap2 += (double)lap * lap;
            grad2 += (double)grad * grad;
            trans2 += (double)tr * tr;
        }
    float* s = p.stats + GS_TILE_STATS * t;
    s[0] = (float)n, s[1] = z_min, s[2] = z_max, s[3] = (float)lum, s[4] = (float)lum2;
    s[5] = (float)lap2, s[6] = (float)grad2, s[7] = (float)trans2;
}

// Tile t of the composite (gscache/stages/reuse.py, reuse_composite): the warp's valid pixels
// into the rasterized view where the tile is reused, else its true error against them.
GS_HD void gs_reuse_composite(const GsReuseCompositeParams& p, long long t) {
    const int tx = (int)(t % p.tiles_x), ty = (int)(t / p.tiles_x);
    const int x0 = tx * p.tile_px, y0 = ty * p.tile_px;
    const int x1 = x0 + p.tile_px < p.width ? x0 + p.tile_px : p.width;
    const int y1 = y0 + p.tile_px < p.height ? y0 + p.tile_px : p.height;
    const bool reused = p.reused[t] != 0;
    double sum = 0.0, count = 0.0;
    for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) {
            const long long i = (long long)y * p.width + x;
            if (!p.valid[i]) continue;
            if (reused) {
                for (int c = 0; c < 3; ++c) p.rgb[3 * i + c] = p.w_rgb[3 * i + c];
                p.alpha[i] = p.w_alpha[i];
                p.depth[i] = p.w_depth[i];
                p.median[i] = p.w_depth[i];
            } else {
                float d = 0.f;
                for (int c = 0; c < 3; ++c) {
                    const float e = gs_clamp01(p.w_rgb[3 * i + c]) - gs_clamp01(p.rgb[3 * i + c]);
                    d += e * e;
                }
                sum += d / 3.f;
                count += 1.0;
            }
        }
    p.truth[2 * t] = (float)sum;
    p.truth[2 * t + 1] = (float)count;
}
