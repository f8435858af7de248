// Host entry points of the cpu backend: the math of common.cuh in OpenMP loops, behind a C ABI
// that gscache/backends/cpu.py calls through ctypes, each taking the kernel's parameter struct
// of common.cuh by pointer. The rasterizer, the sorted binning and the 4-anchor MLP are this
// backend's own implementations (see the head of common.cuh); the rest calls the device functions.
//
// Contract (all arrays contiguous, row-major; E views, N scene Gaussians, V visible, K SH
// coefficients, I intersections, T tiles per view):
//   cull:      means f32[N,3], scales f32[N,3], views GsView[E] -> keep u8[N] (1: may be drawn)
//   shade:     means f32[V,3], quats f32[V,4], scales f32[V,3], sh f32[V,K,3], positions f32[E,3]
//              -> covars f32[V,6], colors f32[E,V,3]
//   project:   means f32[V,3], covars f32[V,6], views GsView[E]
//              -> means2d f32[E,V,2], conics f32[E,V,3], depths f32[E,V], radii i32[E,V,2]
//   scale_projection: a projection's means2d f32[E,V,2], conics f32[E,V,3], depths f32[E,V] and
//              the views GsView[E] at a lower resolution -> that view's means2d, conics, radii.
//   bin_count: means2d f32[E*V,2], radii i32[E*V,2] -> counts i32[E*V]
//   bin_sorted: means2d, radii, depths f32[E*V], counts i32[E*V], shared_depth (0/1) -> keys i64[I] sorted by tile then
//              depth (layout in common.cuh), gaussian_ids i32[I] (0..V-1), ranges i32[E*T,2]
//              ([start, end) of each tile's run; start == end for empty tiles); returns 0, or -1
//              when out of memory.
//   rasterize: means2d f32[E*V,2], conics f32[E*V,3], opacities f32[V], colors f32[E*V,3],
//              depths f32[E*V], gaussian_ids i32[I] (0..V-1, in key order), ranges i32[E*T,2],
//              background f32[3], pixel_mask u8[E,H,W] or null (only those pixels wanted: the
//              others start finished, and splats are clipped to the wanted pixels' box)
//              -> rgb f32[E,H,W,3], alpha f32[E,H,W], depth f32[E,H,W], median depth f32[E,H,W];
//              returns the number of Gaussian-pixel evaluations (the pixels of each splat's reach
//              box within its tile), or -2 when out of memory.
//   derive_count: n visible anchors ids i64[n] into the A anchors: anchors f32[A,3], features
//              f32[A,F], levels f32[A], viewpoint f32[3], MLP tables (common.cuh)
//              -> opac f32[n,k] (tanh outputs), counts i32[n] (how many > 0)
//   reproject: source rgb f32[Hs,Ws,3], alpha f32[Hs,Ws], median depth f32[Hs,Ws], the 3x4 transforms
//              between the cameras and both intrinsics (f64) -> rgb f32[H,W,3], alpha f32[H,W], depth
//              f32[H,W], valid u8[H,W] (scratch zbuf u64[H*W], zfill f64[H*W]).
//   tile_stats: a warp's rgb f32[H,W,3], alpha, depth f32[H,W], valid u8[H,W] -> stats f32[T,8]
//              (gscache.stages.reuse.STATS), one tile per loop iteration.
//   reuse_composite: the warp, reused u8[T], the rasterized rgb/alpha/depth/median (written in
//              place: the warp's valid pixels of reused tiles) -> truth f32[T,2].
//   fovea_composite: the fovea pass's rgb f32[E,H,W,3], alpha, depth, median f32[E,H,W] (in
//              place: the composite), the periphery's at [E,h,w], rects i32[E,4] (both median
//              pointers null or both set), one pixel per loop iteration.
//   derive_emit: the same plus offsets f32[A,k,3], scales f32[A,6], opac, starts i64[n] (exclusive
//              prefix sum of counts) -> means f32[M,3], quats f32[M,4], scales f32[M,3],
//              opacities f32[M], sh f32[M,1,3], rows in (anchor, offset) order.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <omp.h>

#if defined(__AVX__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "common.cuh"

#define GS_ABI_VERSION 9

// The host library's vectors: 16 floats (the rasterizer's 4x4 block of pixels; 16 Gaussians in
// the projection), in GCC's vector extensions. The compiler maps them onto the machine the host
// library is built for (-march=native): one AVX-512 register, two of AVX2, four of SSE or NEON,
// or 16 scalars where there is no SIMD. gs_vexp (below) is gs_exp of common.cuh lane by lane, in
// the same float operations (its floor by truncation and a correction, exact for |x| < 2^31).
constexpr int GS_LANES = 16;
typedef float gs_vf __attribute__((vector_size(4 * GS_LANES)));
typedef int gs_vm __attribute__((vector_size(4 * GS_LANES)));  // lane masks: 0 or -1
static inline gs_vf gs_vsel(gs_vm m, gs_vf a, gs_vf b) { return m ? a : b; }
static inline gs_vf gs_vfloor(gs_vf t) {
    const gs_vf tr = __builtin_convertvector(__builtin_convertvector(t, gs_vm), gs_vf);
    return tr - gs_vsel(t < tr, gs_vf{} + 1.f, gs_vf{});
}
static inline gs_vf gs_vceil(gs_vf t) { return -gs_vfloor(-t); }
static inline gs_vf gs_vmin(gs_vf a, gs_vf b) { return gs_vsel(a < b, a, b); }  // gs_min
static inline gs_vf gs_vmax(gs_vf a, gs_vf b) { return gs_vsel(a > b, a, b); }  // gs_max
static inline gs_vm gs_visfinite(gs_vf x) { return (x - x) == 0.f; }
static inline gs_vf gs_vsqrt(gs_vf x) {
#if defined(__AVX512F__)
    return (gs_vf)_mm512_sqrt_ps((__m512)x);
#else
    for (int l = 0; l < GS_LANES; ++l) x[l] = std::sqrt(x[l]);
    return x;
#endif
}
static inline gs_vf gs_vpow2(gs_vf n) {  // 2^n for integral n in [-126, 127]
    return (gs_vf)((__builtin_convertvector(n, gs_vm) + 127) << 23);
}
static inline bool gs_vany(gs_vm m) {  // any lane set
#if defined(__AVX512F__)
    return _mm512_test_epi32_mask((__m512i)m, (__m512i)m) != 0;
#elif defined(__AVX2__)
    __m256i half[2];
    std::memcpy(half, &m, sizeof m);
    const __m256i both = _mm256_or_si256(half[0], half[1]);
    return !_mm256_testz_si256(both, both);
#else
    int any = 0;
    for (int l = 0; l < GS_LANES; ++l) any |= m[l];
    return any != 0;
#endif
}

// gs_project (with gs_splat) of common.cuh for 16 Gaussians at once, one per lane: the same
// float operations in the same order (the comparison with the reference holds both to the same
// tolerances). An integer radius beyond 2^30 pixels is clamped there (the scalar code's int
// conversion is undefined past 2^31).
static void gs_project16(const float* means, const float* cov6, const GsView& v, float eps2d, float extent_sigma,
                         float* means2d, float* conic, float* depth, int* radii) {
    gs_vf p[3], S6[6];
    for (int l = 0; l < GS_LANES; ++l) {
        for (int k = 0; k < 3; ++k) p[k][l] = means[3 * l + k];
        for (int k = 0; k < 6; ++k) S6[k][l] = cov6[6 * l + k];
    }
    const float* R = v.R;
    const gs_vf x = R[0] * p[0] + R[1] * p[1] + R[2] * p[2] + v.t[0];
    const gs_vf y = R[3] * p[0] + R[4] * p[1] + R[5] * p[2] + v.t[1];
    const gs_vf z = R[6] * p[0] + R[7] * p[1] + R[8] * p[2] + v.t[2];
    const gs_vf S[9] = {S6[0], S6[1], S6[2], S6[1], S6[3], S6[4], S6[2], S6[4], S6[5]};
    gs_vf RS[9], C[9];
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
    const gs_vf zero = z * 0.f;
    const gs_vf tx = z * gs_vmin(gs_vmax(x / z, zero - lim_x_neg), zero + lim_x_pos);
    const gs_vf ty = z * gs_vmin(gs_vmax(y / z, zero - lim_y_neg), zero + lim_y_pos);
    const gs_vf J[6] = {v.fx / z, zero, -v.fx * tx / (z * z), zero, v.fy / z, -v.fy * ty / (z * z)};
    gs_vf JC[6];
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
            JC[3 * i + j] = J[3 * i] * C[j] + J[3 * i + 1] * C[3 + j] + J[3 * i + 2] * C[6 + j];
    const gs_vf c00 = JC[0] * J[0] + JC[1] * J[1] + JC[2] * J[2];
    const gs_vf c01 = JC[0] * J[3] + JC[1] * J[4] + JC[2] * J[5];
    const gs_vf c10 = JC[3] * J[0] + JC[4] * J[1] + JC[5] * J[2];
    const gs_vf c11 = JC[3] * J[3] + JC[4] * J[4] + JC[5] * J[5];
    const gs_vf a = c00 + eps2d, b = 0.5f * (c01 + c10), c = c11 + eps2d;
    const gs_vf mx = v.fx * x / z + v.cx, my = v.fy * y / z + v.cy;
    // gs_splat
    const gs_vf det = a * c - b * b;
    const gs_vf det_safe = gs_vmax(det, zero + 1e-10f);
    const gs_vf q0 = c / det_safe, q1 = -b / det_safe, q2 = a / det_safe;
    const gs_vf ex = extent_sigma * gs_vsqrt(gs_vmax(a, zero)), ey = extent_sigma * gs_vsqrt(gs_vmax(c, zero));
    const gs_vf big = zero + 1073741824.f;  // 2^30: a float this large is an integer already
    const gs_vf rx = gs_vsel(ex < big, gs_vceil(gs_vmin(ex, big)), ex);
    const gs_vf ry = gs_vsel(ey < big, gs_vceil(gs_vmin(ey, big)), ey);
    gs_vm drawn = (det > 0.f) & (z > v.near_m) & (z < v.far_m);
    drawn &= (mx + rx > 0.f) & (mx - rx < (float)v.width);
    drawn &= (my + ry > 0.f) & (my - ry < (float)v.height);
    drawn &= gs_visfinite(mx) & gs_visfinite(my) & gs_visfinite(q0) & gs_visfinite(q1) & gs_visfinite(q2);
    const gs_vm irx = __builtin_convertvector(gs_vmin(rx, big), gs_vm) & drawn;
    const gs_vm iry = __builtin_convertvector(gs_vmin(ry, big), gs_vm) & drawn;
    for (int l = 0; l < GS_LANES; ++l) {
        means2d[2 * l] = mx[l];
        means2d[2 * l + 1] = my[l];
        conic[3 * l] = q0[l];
        conic[3 * l + 1] = q1[l];
        conic[3 * l + 2] = q2[l];
        depth[l] = z[l];
        radii[2 * l] = irx[l];
        radii[2 * l + 1] = iry[l];
    }
}

// gs_cull_keep of common.cuh for 16 Gaussians at once, one per lane, in the same float
// operations: whether each may be drawn in one of the E views (keep[16], 0 or 1).
static void gs_cull16(const float* means, const float* scales, const GsView* views, int E, float eps2d,
                      float extent_sigma, float margin_px, unsigned char* keep) {
    gs_vf p[3], s[3];
    for (int l = 0; l < GS_LANES; ++l)
        for (int k = 0; k < 3; ++k) p[k][l] = means[3 * l + k], s[k][l] = scales[3 * l + k];
    const gs_vf s_max = gs_vmax(s[0], gs_vmax(s[1], s[2])), zero = s_max * 0.f;
    const gs_vf big = zero + 1073741824.f;  // 2^30: a float this large is an integer already
    gs_vm kept = zero < zero;
    for (int e = 0; e < E; ++e) {
        const GsView& v = views[e];
        const float* R = v.R;
        const gs_vf x = R[0] * p[0] + R[1] * p[1] + R[2] * p[2] + v.t[0];
        const gs_vf y = R[3] * p[0] + R[4] * p[1] + R[5] * p[2] + v.t[1];
        const gs_vf z = R[6] * p[0] + R[7] * p[1] + R[8] * p[2] + v.t[2];
        const float tan_fovx = 0.5f * v.width / v.fx, tan_fovy = 0.5f * v.height / v.fy;
        const float lim_x = gs_max((v.width - v.cx) / v.fx, v.cx / v.fx) + (GS_FOV_CLAMP - 1.f) * tan_fovx;
        const float lim_y = gs_max((v.height - v.cy) / v.fy, v.cy / v.fy) + (GS_FOV_CLAMP - 1.f) * tan_fovy;
        const gs_vf u = v.fx * x / z + v.cx, w = v.fy * y / z + v.cy;
        const gs_vf sx = s_max * v.fx / z, sy = s_max * v.fy / z;
        const gs_vf ex = extent_sigma * gs_vsqrt(sx * sx * (1.f + lim_x * lim_x) + eps2d);
        const gs_vf ey = extent_sigma * gs_vsqrt(sy * sy * (1.f + lim_y * lim_y) + eps2d);
        const gs_vf rx = gs_vsel(ex < big, gs_vceil(gs_vmin(ex, big)), ex) + 1.f + margin_px;
        const gs_vf ry = gs_vsel(ey < big, gs_vceil(gs_vmin(ey, big)), ey) + 1.f + margin_px;
        kept |= (z > v.near_m) & (z < v.far_m) & (u + rx > 0.f) & (u - rx < (float)v.width) & (w + ry > 0.f) &
                (w - ry < (float)v.height);
    }
    for (int l = 0; l < GS_LANES; ++l) keep[l] = kept[l] != 0;
}

// gs_quat_scale_to_covar and gs_eval_sh of common.cuh for 16 Gaussians at once, one per lane, in
// the same float operations and order (a lane can still differ from the scalar functions by
// rounding where the compiler fuses multiply-adds differently): the covariance once, the colour
// for each of the E view positions. The SH coefficients are read once into lanes for all views.
static void gs_shade16(int degree, int K, int E, int64_t V, const float* means, const float* quats,
                       const float* scales, const float* sh, const float* positions, float* covars, float* colors) {
    gs_vf q[4], sc[3], m[3];
    for (int l = 0; l < GS_LANES; ++l) {
        for (int k = 0; k < 4; ++k) q[k][l] = quats[4 * l + k];
        for (int k = 0; k < 3; ++k) sc[k][l] = scales[3 * l + k], m[k][l] = means[3 * l + k];
    }
    const gs_vf w = q[0], x = q[1], y = q[2], z = q[3];
    const gs_vf R[9] = {1.f - 2.f * (y * y + z * z), 2.f * (x * y - w * z), 2.f * (x * z + w * y),
                        2.f * (x * y + w * z), 1.f - 2.f * (x * x + z * z), 2.f * (y * z - w * x),
                        2.f * (x * z - w * y), 2.f * (y * z + w * x), 1.f - 2.f * (x * x + y * y)};
    gs_vf M[9];
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) M[3 * i + j] = R[3 * i + j] * sc[j];
    const int rows[6] = {0, 0, 0, 1, 1, 2}, cols[6] = {0, 1, 2, 1, 2, 2};
    for (int k = 0; k < 6; ++k) {
        const gs_vf* a = M + 3 * rows[k];
        const gs_vf* b = M + 3 * cols[k];
        const gs_vf cov = a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
        for (int l = 0; l < GS_LANES; ++l) covars[6 * l + k] = cov[l];
    }
    const int n = degree >= 3 ? 16 : degree == 2 ? 9 : degree == 1 ? 4 : 1;
    gs_vf coef[16][3];
    for (int l = 0; l < GS_LANES; ++l)
        for (int i = 0; i < n; ++i)
            for (int c = 0; c < 3; ++c) coef[i][c][l] = sh[(int64_t)K * 3 * l + 3 * i + c];
    for (int e = 0; e < E; ++e) {
        const float* o = positions + 3 * e;
        const gs_vf dx = m[0] - o[0], dy = m[1] - o[1], dz = m[2] - o[2];
        const gs_vf zero = dx * 0.f;
        const gs_vf nrm = gs_vmax(gs_vsqrt(dx * dx + dy * dy + dz * dz), zero + 1e-12f);
        const gs_vf X = dx / nrm, Y = dy / nrm, Z = dz / nrm;
        gs_vf basis[16];
        basis[0] = zero + GS_SH_C0;
        if (degree >= 1) {
            basis[1] = -GS_SH_C1 * Y;
            basis[2] = GS_SH_C1 * Z;
            basis[3] = -GS_SH_C1 * X;
        }
        if (degree >= 2) {
            const gs_vf xx = X * X, yy = Y * Y, zz = Z * Z, xy = X * Y, yz = Y * Z, xz = X * Z;
            basis[4] = GS_SH_C2_0 * xy;
            basis[5] = GS_SH_C2_1 * yz;
            basis[6] = GS_SH_C2_2 * (2.f * zz - xx - yy);
            basis[7] = GS_SH_C2_3 * xz;
            basis[8] = GS_SH_C2_4 * (xx - yy);
            if (degree >= 3) {
                basis[9] = GS_SH_C3_0 * Y * (3.f * xx - yy);
                basis[10] = GS_SH_C3_1 * xy * Z;
                basis[11] = GS_SH_C3_2 * Y * (4.f * zz - xx - yy);
                basis[12] = GS_SH_C3_3 * Z * (2.f * zz - 3.f * xx - 3.f * yy);
                basis[13] = GS_SH_C3_4 * X * (4.f * zz - xx - yy);
                basis[14] = GS_SH_C3_5 * Z * (xx - yy);
                basis[15] = GS_SH_C3_6 * X * (xx - 3.f * yy);
            }
        }
        float* out = colors + 3 * (int64_t)e * V;
        for (int c = 0; c < 3; ++c) {
            gs_vf acc = zero;
            for (int i = 0; i < n; ++i) acc += basis[i] * coef[i][c];
            const gs_vf rgb = gs_vmax(acc + 0.5f, zero);
            for (int l = 0; l < GS_LANES; ++l) out[3 * l + c] = rgb[l];
        }
    }
}

extern "C" {

int gs_abi_version() { return GS_ABI_VERSION; }

// sizeof(GsView), so the wrapper can check that its ctypes mirror has the same layout.
int gs_view_size() { return (int)sizeof(GsView); }

// The widest vector registers this build uses, in bits: 512 (AVX-512), 256 (AVX2), 128 (SSE2 or
// NEON) or 0 (scalar); the rasterizer's 16-lane vectors are 1, 2, 4 or 16 of them.
int gs_vector_bits() {
#if defined(__AVX512F__)
    return 512;
#elif defined(__AVX2__)
    return 256;
#elif defined(__SSE2__) || defined(__ARM_NEON)
    return 128;
#else
    return 0;
#endif
}

void gs_cull_cpu(const GsCullParams* p) {
    const int E = p->E;
    const int64_t N = p->N;
    const float *means = p->means, *scales = p->scales;
    const GsView* views = p->views;
    const float eps2d = p->eps2d, extent_sigma = p->extent_sigma, margin_px = p->margin_px;
    unsigned char* keep = p->keep;
    // 16 Gaussians at a time (gs_cull16); the last few padded to 16.
    const int64_t blocks = N / GS_LANES, rest = N % GS_LANES;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < blocks; ++k)
        gs_cull16(means + 3 * k * GS_LANES, scales + 3 * k * GS_LANES, views, E, eps2d, extent_sigma, margin_px,
                  keep + k * GS_LANES);
    if (rest) {
        const int64_t i = blocks * GS_LANES;
        float m[3 * GS_LANES] = {}, s[3 * GS_LANES] = {};
        unsigned char k[GS_LANES];
        std::copy(means + 3 * i, means + 3 * N, m);
        std::copy(scales + 3 * i, scales + 3 * N, s);
        gs_cull16(m, s, views, E, eps2d, extent_sigma, margin_px, k);
        std::copy(k, k + rest, keep + i);
    }
}

void gs_shade_cpu(const GsShadeParams* p) {
    const int E = p->E, V = p->V, K = p->K, degree = p->degree;
    const float *means = p->means, *quats = p->quats, *scales = p->scales, *sh = p->sh, *positions = p->positions;
    float *covars = p->covars, *colors = p->colors;
    // 16 Gaussians at a time (gs_shade16); the last few padded to 16, so that every Gaussian's
    // result is the same wherever it falls (the caches compare frames bit for bit).
    const int64_t blocks = V / GS_LANES, rest = V % GS_LANES;
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < blocks; ++k) {
        const int64_t i = k * GS_LANES;
        gs_shade16(degree, K, E, V, means + 3 * i, quats + 4 * i, scales + 3 * i, sh + (int64_t)K * 3 * i, positions,
                   covars + 6 * i, colors + 3 * i);
    }
    if (rest) {
        const int64_t i = blocks * GS_LANES;
        std::vector<float> m(3 * GS_LANES, 0.f), q(4 * GS_LANES, 0.f), sc(3 * GS_LANES, 0.f);
        std::vector<float> c((size_t)K * 3 * GS_LANES, 0.f), cov(6 * GS_LANES), rgb((size_t)3 * E * GS_LANES);
        std::copy(means + 3 * i, means + 3 * V, m.begin());
        std::copy(quats + 4 * i, quats + 4 * (int64_t)V, q.begin());
        std::copy(scales + 3 * i, scales + 3 * (int64_t)V, sc.begin());
        std::copy(sh + (int64_t)K * 3 * i, sh + (int64_t)K * 3 * V, c.begin());
        gs_shade16(degree, K, E, GS_LANES, m.data(), q.data(), sc.data(), c.data(), positions, cov.data(), rgb.data());
        std::copy(cov.begin(), cov.begin() + 6 * rest, covars + 6 * i);
        for (int e = 0; e < E; ++e)
            std::copy(rgb.begin() + 3 * e * GS_LANES, rgb.begin() + 3 * e * GS_LANES + 3 * rest,
                      colors + 3 * ((int64_t)e * V + i));
    }
}

void gs_project_cpu(const GsProjectParams* p) {
    const int E = p->E, V = p->V;
    const float *means = p->means, *covars = p->covars;
    const GsView* views = p->views;
    const float eps2d = p->eps2d, extent_sigma = p->extent_sigma;
    float *means2d = p->means2d, *conics = p->conics, *depths = p->depths;
    int* radii = p->radii;
    // 16 Gaussians at a time (gs_project16); the last few padded to 16, so that every
    // Gaussian's result is the same wherever it falls.
    const int64_t blocks = V / GS_LANES, rest = V % GS_LANES;
    for (int e = 0; e < E; ++e) {
        const GsView view = views[e];
#pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < blocks; ++k) {
            const int64_t i = k * GS_LANES, f = (int64_t)e * V + i;
            gs_project16(means + 3 * i, covars + 6 * i, view, eps2d, extent_sigma, means2d + 2 * f, conics + 3 * f,
                         depths + f, radii + 2 * f);
        }
        if (rest) {
            const int64_t i = blocks * GS_LANES, f = (int64_t)e * V + i;
            float m[3 * GS_LANES] = {}, c[6 * GS_LANES] = {}, m2[2 * GS_LANES], cn[3 * GS_LANES], z[GS_LANES];
            int r[2 * GS_LANES];
            std::copy(means + 3 * i, means + 3 * (int64_t)V, m);
            std::copy(covars + 6 * i, covars + 6 * (int64_t)V, c);
            gs_project16(m, c, view, eps2d, extent_sigma, m2, cn, z, r);
            std::copy(m2, m2 + 2 * rest, means2d + 2 * f);
            std::copy(cn, cn + 3 * rest, conics + 3 * f);
            std::copy(z, z + rest, depths + f);
            std::copy(r, r + 2 * rest, radii + 2 * f);
        }
    }
}

void gs_bin_count_cpu(const GsBinParams* p) {
    const int64_t EV = (int64_t)p->E * p->V;
    const float* means2d = p->means2d;
    const int* radii = p->radii;
    const int tile_px = p->tile_px, tiles_x = p->tiles_x, tiles_y = p->tiles_y;
    int* counts = p->counts;
#pragma omp parallel for schedule(static)
    for (int64_t f = 0; f < EV; ++f) {
        int lo[2], hi[2];
        counts[f] = gs_tile_rect(means2d[2 * f], means2d[2 * f + 1], radii[2 * f], radii[2 * f + 1], tile_px, tiles_x,
                                 tiles_y, lo, hi);
    }
}

}  // extern "C"

// Scratch buffers kept by the calling thread from call to call, one per use (slot): a fresh
// buffer each frame costs its pages' faults and zeroing (the kernel's page clearing was 8% of a
// perf profile of 30 rasterizer calls on playbot at 1024x1024, 2-core AMD EPYC, scene loading
// included). A buffer is given back when a call needs under a quarter of it, and one over
// WORKSPACE_KEEP_BYTES at the end of the call that used it (workspace_trim): a large scene's
// frame takes seconds, its page faults little of them, and binning's and the rasterizer's
// buffers then never add up in the peak. Null when out of memory.
enum WorkspaceSlot { WS_SPLATS, WS_PAIRS, WS_PAIRS_SCRATCH, WS_ENTRIES, WS_BY_INDEX, WS_SLOTS };
constexpr size_t WORKSPACE_KEEP_BYTES = (size_t)64 << 20;
struct WorkspaceBuffer {
    void* data = nullptr;
    size_t capacity = 0;
    ~WorkspaceBuffer() { std::free(data); }
};
static thread_local WorkspaceBuffer workspace_buffers[WS_SLOTS];

static void workspace_trim() {
    for (WorkspaceBuffer& b : workspace_buffers)
        if (b.capacity > WORKSPACE_KEEP_BYTES) {
            std::free(b.data);
            b.data = nullptr, b.capacity = 0;
        }
}

static void* workspace(WorkspaceSlot slot, size_t bytes) {
    WorkspaceBuffer& b = workspace_buffers[slot];
    bytes = std::max<size_t>((bytes + 63) & ~(size_t)63, 64);
    if (bytes > b.capacity || 4 * bytes < b.capacity) {
        std::free(b.data);
        b.data = std::aligned_alloc(64, bytes);
        b.capacity = b.data ? bytes : 0;
    }
    return b.data;
}

// A stable LSD radix sort of (key << 32 | index) pairs by key, 11 bits a pass, in parallel: each
// thread histograms and then scatters its own contiguous part, the parts in thread order
// within each digit (so ties keep their order). A pass whose digit is the same for every pair
// is skipped. Returns the buffer holding the sorted pairs (a or tmp).
static uint64_t* radix_sort_pairs(uint64_t* a, uint64_t* tmp, int64_t n) {
    const int threads = omp_get_max_threads();
    std::vector<int64_t> hist((size_t)threads * 2048);
    uint64_t *src = a, *dst = tmp;
    for (int shift = 32; shift < 64; shift += 11) {
        bool skip = false;
#pragma omp parallel
        {
            const int q = omp_get_num_threads(), t = omp_get_thread_num();
            const int64_t lo = n * t / q, hi = n * (t + 1) / q;
            int64_t* h = hist.data() + (size_t)t * 2048;
            std::fill(h, h + 2048, 0);
            for (int64_t i = lo; i < hi; ++i) ++h[(src[i] >> shift) & 2047];
#pragma omp barrier
#pragma omp single
            {
                int64_t sum = 0;
                for (int d = 0; d < 2048; ++d) {
                    int64_t in_digit = 0;
                    for (int u = 0; u < q; ++u) {
                        const int64_t c = hist[(size_t)u * 2048 + d];
                        hist[(size_t)u * 2048 + d] = sum;
                        sum += c;
                        in_digit += c;
                    }
                    skip |= in_digit == n;
                }
            }
            if (!skip)
                for (int64_t i = lo; i < hi; ++i) dst[h[(src[i] >> shift) & 2047]++] = src[i];
        }
        if (!skip) std::swap(src, dst);
    }
    return src;
}

// One (view, Gaussian)'s tiles [x0, x1) x [y0, y1) (the wrapper keeps tiles_x and tiles_y
// below 2^16), depth bits and index: 16 bytes, four to a cache line.
struct BinEntry {
    uint16_t x0, y0, x1, y1;
    uint32_t depth_bits;
    int32_t g;
};

// Calls visit(tile, on) for each tile of an entry's rectangle, tile = ty * tiles_x + tx in
// row-major order, on = true. Rectangles of at most 2x2 tiles (nearly all: 1.9 tiles per Gaussian
// on playbot at 1024x1024) take a fixed sequence of four calls instead, those outside the
// rectangle with on = false and a tile that may lie outside the grid (the visitor must not use
// it then), because a loop over a rectangle of random size mispredicts its branches.
template <class Visit>
static inline void for_each_tile(const BinEntry& r, int tiles_x, Visit visit) {
    const int w = r.x1 - r.x0, h = r.y1 - r.y0;
    if (w <= 2 && h <= 2) {
        const int64_t t0 = (int64_t)r.y0 * tiles_x + r.x0;
        visit(t0, w > 0 && h > 0);
        visit(t0 + 1, w > 1 && h > 0);
        visit(t0 + tiles_x, w > 0 && h > 1);
        visit(t0 + tiles_x + 1, w > 1 && h > 1);
    } else {
        for (int ty = r.y0; ty < r.y1; ++ty)
            for (int tx = r.x0; tx < r.x1; ++tx) visit((int64_t)ty * tiles_x + tx, true);
    }
}

// Calls visit(cursors, view, entry) for every view's entries (entries[e * V + i], i < m[e]) in P
// contiguous parts of each view's depth order, part u with its own cursors (cursor + u * E * T),
// in order within a part; the parts are spread over the team's threads whatever its size
// (P = the most threads OpenMP gives), so every call splits the entries alike.
template <class Visit>
static void for_each_part(int P, int E, int V, int64_t T, const int64_t* m, const BinEntry* entries,
                          int64_t* cursor, Visit visit) {
#pragma omp parallel
    {
        const int q = omp_get_num_threads();
        for (int u = omp_get_thread_num(); u < P; u += q)
            for (int e = 0; e < E; ++e) {
                const BinEntry* in = entries + (int64_t)e * V;
                for (int64_t i = m[e] * u / P; i < m[e] * (u + 1) / P; ++i) visit(cursor + (size_t)u * E * T, e, in[i]);
            }
    }
}

extern "C" {

// Sorted intersections without a key sort, in time linear in the Gaussians and intersections:
// the Gaussians with a tile are ordered by depth (a radix sort of their depth bits; once for all
// views when shared_depth says every Gaussian has the same depth in every view, as with parallel
// eyes), then emitted in that order into per-tile slots found by a counting sort over tile ids.
// The Gaussians' tiles and depths are gathered into depth order once, so the count and the
// emission read memory in order. Both split the depth order into P contiguous parts (P = the most
// threads OpenMP gives, whatever a team's size), and a tile's slots hold part 0's intersections
// first: each tile's run is in depth order with ties in index order, exactly the order a stable
// sort of the (tile, depth) keys gives. Returns 0, or -1 when out of memory.
int gs_bin_sorted_cpu(const GsBinParams* p) {
    const int E = p->E, V = p->V, tile_px = p->tile_px, tiles_x = p->tiles_x, tiles_y = p->tiles_y;
    const int shared_depth = p->shared_depth;
    const float *means2d = p->means2d, *depths = p->depths;
    const int *radii = p->radii, *counts = p->counts;
    int64_t* keys = reinterpret_cast<int64_t*>(p->keys);
    int *gaussian_ids = p->ids, *ranges = p->ranges;
    const int64_t T = (int64_t)tiles_x * tiles_y;
    const int threads = omp_get_max_threads();
    // Each view's entries in its depth order: entries[e * V + i], i < m[e].
    BinEntry* entries = static_cast<BinEntry*>(workspace(WS_ENTRIES, sizeof(BinEntry) * (size_t)E * V));
    BinEntry* by_index = static_cast<BinEntry*>(workspace(WS_BY_INDEX, sizeof(BinEntry) * (size_t)E * V));
    uint64_t* pairs = static_cast<uint64_t*>(workspace(WS_PAIRS, sizeof(uint64_t) * (size_t)V));
    uint64_t* pairs_scratch = static_cast<uint64_t*>(workspace(WS_PAIRS_SCRATCH, sizeof(uint64_t) * (size_t)V));
    if (!entries || !by_index || !pairs || !pairs_scratch) {
        workspace_trim();
        return -1;
    }
    std::vector<int64_t> m(E), part((size_t)threads + 1);
    for (int o = 0; o < (shared_depth ? 1 : E); ++o) {
        const int e0 = shared_depth ? 0 : o, e1 = shared_depth ? E : o + 1;  // the views of this order
        const float* z = depths + (int64_t)o * V;
        // Each view's entries in index order, and the (depth bits, index) pairs of the Gaussians
        // with a tile in one of the views: each thread counts its part of the indices, then
        // writes them after the parts before.
        int64_t n = 0;
#pragma omp parallel
        {
            const int q = omp_get_num_threads(), t = omp_get_thread_num();
            const int lo = (int)((int64_t)V * t / q), hi = (int)((int64_t)V * (t + 1) / q);
            int64_t c = 0;
            for (int g = lo; g < hi; ++g) {
                bool any = false;
                for (int e = e0; e < e1; ++e) {
                    const int64_t f = (int64_t)e * V + g;
                    int lo2[2] = {0, 0}, hi2[2] = {0, 0};
                    if (counts[f])
                        gs_tile_rect(means2d[2 * f], means2d[2 * f + 1], radii[2 * f], radii[2 * f + 1], tile_px,
                                     tiles_x, tiles_y, lo2, hi2);
                    by_index[f] = {(uint16_t)lo2[0], (uint16_t)lo2[1], (uint16_t)hi2[0], (uint16_t)hi2[1],
                                   gs_float_bits(depths[f]), g};
                    any |= counts[f] != 0;
                }
                c += any;
            }
            part[t + 1] = c;
#pragma omp barrier
#pragma omp single
            {
                part[0] = 0;
                for (int u = 0; u < q; ++u) part[u + 1] += part[u];
                n = part[q];
            }
            int64_t at = part[t];
            for (int g = lo; g < hi; ++g) {
                bool any = false;
                for (int e = e0; e < e1; ++e) any |= counts[(int64_t)e * V + g] != 0;
                if (any) pairs[at++] = (uint64_t)gs_float_bits(z[g]) << 32 | (uint32_t)g;
            }
        }
        const uint64_t* sorted = radix_sort_pairs(pairs, pairs_scratch, n);
        for (int e = e0; e < e1; ++e) {  // gathered into depth order: one random read per entry
            m[e] = n;
            BinEntry* out = entries + (int64_t)e * V;
            const BinEntry* in = by_index + (int64_t)e * V;
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < n; ++i) out[i] = in[(uint32_t)sorted[i]];
        }
    }
    // Intersections per (part of the depth order, view, tile), then each part's first slot in
    // every tile (a tile's slots hold part 0's intersections first), then the emission.
    const int P = threads;
    std::vector<int64_t> cursor((size_t)P * E * T, 0);
    for_each_part(P, E, V, T, m.data(), entries, cursor.data(), [&](int64_t* mine, int e, const BinEntry& r) {
        // Visits that are off add 0 to a real counter (tile 0 of the view).
        for_each_tile(r, tiles_x, [&](int64_t tile, bool on) { mine[e * T + (on ? tile : 0)] += on; });
    });
    int64_t sum = 0;
    for (int64_t tile = 0; tile < E * T; ++tile) {
        ranges[2 * tile] = (int)sum;
        for (int u = 0; u < P; ++u) {
            const int64_t c = cursor[(size_t)u * E * T + tile];
            cursor[(size_t)u * E * T + tile] = sum;
            sum += c;
        }
        ranges[2 * tile + 1] = (int)sum;
    }
    for_each_part(P, E, V, T, m.data(), entries, cursor.data(), [&](int64_t* mine, int e, const BinEntry& r) {
        // A plain loop here: the four fixed visits of for_each_tile measured slower (their
        // stores to a sink cost more than the mispredicted branches they save).
        for (int ty = r.y0; ty < r.y1; ++ty)
            for (int tx = r.x0; tx < r.x1; ++tx) {
                const int64_t tile = e * T + (int64_t)ty * tiles_x + tx;
                const int64_t at = mine[tile]++;
                keys[at] = (tile << GS_TILE_KEY_SHIFT) | (int64_t)r.depth_bits;
                gaussian_ids[at] = r.g;
            }
    });
    workspace_trim();
    return 0;
}

// Reproject: the steps of common.cuh's gs_reproject_* over every pixel, one after the other.
void gs_reproject_cpu(const GsReprojectParams* p) {
    const int64_t n = (int64_t)p->width * p->height;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) p->zbuf[i] = GS_REPROJECT_EMPTY;
#pragma omp parallel for schedule(static)
    for (int v = 0; v < p->src_height; ++v)
        for (int u = 0; u < p->src_width; ++u) gs_reproject_splat(*p, u, v);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) gs_reproject_fill(*p, i);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) gs_reproject_sample(*p, i);
}

void gs_tile_stats_cpu(const GsTileStatsParams* p) {
    const int64_t T = (int64_t)p->tiles_x * p->tiles_y;
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t t = 0; t < T; ++t) gs_tile_stats(*p, t);
}

void gs_reuse_composite_cpu(const GsReuseCompositeParams* p) {
    const int64_t T = (int64_t)p->tiles_x * p->tiles_y;
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t t = 0; t < T; ++t) gs_reuse_composite(*p, t);
}

void gs_scale_projection_cpu(const GsScaleProjectionParams* p) {
    const int64_t n = (int64_t)p->E * p->V;
#pragma omp parallel for schedule(static)
    for (int64_t f = 0; f < n; ++f) gs_scale_projection(*p, f);
}

void gs_fovea_composite_cpu(const GsFoveaCompositeParams* p) {
    const int64_t n = (int64_t)p->E * p->height * p->width;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) gs_fovea_composite(*p, i);
}

}  // extern "C"

// The MLPs of four anchors at once: each weight row is loaded once for the four, and the
// accumulators of 16 outputs x 4 anchors stay in registers (the shared gs_mlp_eval streams
// every output through memory per input). X and Y are [4][GS_MLP_ROW] buffers; the weights
// buffer must be readable 16 floats past its end (the packer pads it), as the last output
// chunk of a layer reads whole rows of 16. Returns the buffer holding the outputs.
#define GS_MLP_ROW (GS_MLP_MAX_WIDTH + 16)
static float* mlp_eval4(const int* layers, int first, int count, const float* weights, float (*X)[GS_MLP_ROW],
                        float (*Y)[GS_MLP_ROW]) {
    float(*in)[GS_MLP_ROW] = X;
    float(*out)[GS_MLP_ROW] = Y;
    for (int l = first; l < first + count; ++l) {
        const int n_in = layers[4 * l], n_out = layers[4 * l + 1], act = layers[4 * l + 2];
        const float* W = weights + layers[4 * l + 3];
        const float* bias = W + n_in * n_out;
        for (int o0 = 0; o0 < n_out; o0 += 16) {
            float acc[4][16];
            for (int b = 0; b < 4; ++b)
                for (int o = 0; o < 16; ++o) acc[b][o] = bias[o0 + o];
            for (int i = 0; i < n_in; ++i) {
                const float* row = W + i * n_out + o0;
                for (int b = 0; b < 4; ++b) {
                    const float xb = in[b][i];
                    for (int o = 0; o < 16; ++o) acc[b][o] += xb * row[o];
                }
            }
            const int w = n_out - o0 < 16 ? n_out - o0 : 16;
            for (int b = 0; b < 4; ++b)
                for (int o = 0; o < w; ++o) out[b][o0 + o] = acc[b][o];
        }
        for (int b = 0; b < 4; ++b) {
            if (act == GS_ACT_RELU)
                for (int o = 0; o < n_out; ++o) out[b][o] = out[b][o] > 0.f ? out[b][o] : 0.f;
            else if (act != GS_ACT_NONE)
                for (int o = 0; o < n_out; ++o) out[b][o] = gs_activate(act, out[b][o]);
        }
        std::swap(in, out);
    }
    return &in[0][0];
}

extern "C" {

// Anchors go in groups of four (a short last group repeats its last anchor, computed and dropped).
void gs_derive_count_cpu(const GsDeriveParams* p) {
    const int64_t n = p->n;
    const int64_t* ids = reinterpret_cast<const int64_t*>(p->ids);
    const float *anchors = p->anchors, *features = p->features, *levels = p->levels, *viewpoint = p->viewpoint;
    const int F = p->F, k = p->k, add_level = p->add_level;
    const int *layers = p->layers, *mlps = p->mlps;
    const float* weights = p->weights;
    float* opac = p->opac;
    int* counts = p->counts;
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t g = 0; g < n; g += 4) {
        float X[4][GS_MLP_ROW], Y[4][GS_MLP_ROW];
        for (int b = 0; b < 4; ++b) {
            const int64_t id = ids[std::min(g + b, n - 1)];
            gs_anchor_input(anchors + 3 * id, features + (int64_t)F * id, F, levels[id], viewpoint, mlps[2],
                            add_level, X[b]);
        }
        const float* y = mlp_eval4(layers, mlps[0], mlps[1], weights, X, Y);
        for (int b = 0; b < 4 && g + b < n; ++b) {
            int kept = 0;
            for (int j = 0; j < k; ++j) {
                const float v = y[b * GS_MLP_ROW + j];
                opac[(g + b) * k + j] = v;
                kept += v > 0.f;
            }
            counts[g + b] = kept;
        }
    }
}

void gs_derive_emit_cpu(const GsDeriveParams* p) {
    const int64_t n = p->n;
    const int64_t* ids = reinterpret_cast<const int64_t*>(p->ids);
    const int64_t* starts = reinterpret_cast<const int64_t*>(p->starts);
    const float *anchors = p->anchors, *offsets = p->offsets, *features = p->features, *scales = p->scales;
    const float *levels = p->levels, *viewpoint = p->viewpoint, *weights = p->weights, *opac = p->opac;
    const int F = p->F, k = p->k, add_level = p->add_level;
    const int *layers = p->layers, *mlps = p->mlps, *counts = p->counts;
    float *means = p->means, *quats = p->quats, *out_scales = p->out_scales, *opacities = p->opacities, *sh = p->sh;
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t g = 0; g < n; g += 4) {
        bool any = false;
        for (int b = 0; b < 4 && g + b < n; ++b) any |= counts[g + b] > 0;
        if (!any) continue;  // nothing kept: the cov and colour MLPs are skipped
        float X[4][GS_MLP_ROW], Y[4][GS_MLP_ROW];
        for (int pass = 0; pass < 2; ++pass) {  // 0: covariance, 1: colour
            for (int b = 0; b < 4; ++b) {
                const int64_t id = ids[std::min(g + b, n - 1)];
                gs_anchor_input(anchors + 3 * id, features + (int64_t)F * id, F, levels[id], viewpoint,
                                mlps[5 + 3 * pass], add_level, X[b]);
            }
            const float* y = mlp_eval4(layers, mlps[3 + 3 * pass], mlps[4 + 3 * pass], weights, X, Y);
            for (int b = 0; b < 4 && g + b < n; ++b) {
                const int64_t i = g + b, id = ids[i];
                const float* out = y + b * GS_MLP_ROW;
                int64_t row = starts[i];
                for (int j = 0; j < k; ++j) {
                    if (!(opac[i * k + j] > 0.f)) continue;
                    if (pass == 0)
                        gs_write_gaussian(anchors + 3 * id, offsets + (int64_t)3 * k * id + 3 * j, scales + 6 * id,
                                          out + 7 * j, opac[i * k + j], row, means, quats, out_scales, opacities);
                    else
                        gs_write_color(out + 3 * j, row, sh);
                    ++row;
                }
            }
        }
    }
}

}  // extern "C"

static inline gs_vf gs_vexp(gs_vf x) {
    x = gs_vsel(x > -87.f, x, x * 0.f - 87.f);
    const gs_vf n = gs_vfloor(x * 1.44269504088896341f + 0.5f);
    const gs_vf r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    gs_vf p = r * 0.f + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const gs_vf y = p * r * r + r + 1.f;
    return y * gs_vpow2(n);
}

// A tile's pixels in blocks of 4x4, each block one vector: a splat covering a few pixels (most of
// a trained scene's: about 5x5 on playbot at 1024x1024) is blended in a few vectors whose lanes
// are mostly inside it, where 16-pixel row segments would be mostly outside it.
constexpr int GS_BLOCK_W = 4, GS_BLOCK_H = GS_LANES / GS_BLOCK_W;

// Everything the blending loop reads about one (view, Gaussian), packed into one 64-byte cache
// line: tiles visit Gaussians in depth order, i.e. at random, and one miss per splat beats six.
struct alignas(64) Splat {
    float mx, my;      // centre, pixels
    float A, Bn, C;    // pre-scaled conic: power = dx (A dx + Bn dy) + C dy^2
    float opacity;
    float r, g, b;     // colour
    float depth;
    float reach;       // the power below which alpha < alpha_min at every pixel (a margin below it)
    int x0, x1, y0, y1;  // pixel columns [x0, x1) and rows [y0, y1) within its reach; x0 >= x1: none
};

// ln(x) for normal x > 0: the exponent, and the atanh series of the mantissa brought within
// [sqrt(1/2), sqrt(2)] (|s| <= 0.172, five terms: a truncation error below 1e-9), so float
// rounding, about 1e-7 absolute, is its error. Used only where a margin of 1e-3 or more covers it.
static inline gs_vf gs_vlog(gs_vf x) {
    const gs_vm bits = (gs_vm)x;
    gs_vm e = ((bits >> 23) & 255) - 127;
    gs_vf m = (gs_vf)((bits & 0x7fffff) | 0x3f800000);  // the mantissa, [1, 2)
    const gs_vm big = m > 1.41421356f;
    m = gs_vsel(big, m * 0.5f, m);
    e -= big;  // big is -1 where set
    const gs_vf s = (m - 1.f) / (m + 1.f), s2 = s * s;
    const gs_vf series = 1.f + s2 * (1.f / 3.f + s2 * (1.f / 5.f + s2 * (1.f / 7.f + s2 * (1.f / 9.f))));
    return __builtin_convertvector(e, gs_vf) * 0.693147180559945f + 2.f * s * series;
}

// The packed splats of 16 (view, Gaussian)s. alpha = opacity * exp(-q/2) with q = d^T conic d
// is at least alpha_min where q <= q_max = 2 ln(opacity / alpha_min): reach = -q_max/2 less a
// margin of 1e-3 (a factor 0.999 on alpha, far beyond gs_exp's and gs_vlog's errors), and the
// ellipse's bounding box, half extent sqrt(q_max * cov_xx) along x with cov = conic^-1, widened
// by a relative and an absolute margin (far larger than rounding, far smaller than a pixel), as
// the pixel columns [x0, x1) and rows [y0, y1) whose centres lie in it, clamped far outside any
// image (a degenerate conic reaches every pixel; a splat below alpha_min or off to infinity none).
static void pack16(const float* means2d, const float* conics, const float* opacities, const float* colors,
                   const float* depths, float alpha_min, Splat* out) {
    gs_vf mx, my, a, b, c, op;
    for (int l = 0; l < GS_LANES; ++l) {
        mx[l] = means2d[2 * l], my[l] = means2d[2 * l + 1];
        a[l] = conics[3 * l], b[l] = conics[3 * l + 1], c[l] = conics[3 * l + 2];
        op[l] = opacities[l];
    }
    const gs_vf zero = mx * 0.f;
    const gs_vf q_max = 2.f * gs_vlog(op / alpha_min);
    const gs_vf reach = -0.5f * q_max - 1e-3f;
    const gs_vf det = a * c - b * b;
    const gs_vm regular = (det > 0.f) & (a > 0.f) & (c > 0.f);
    const gs_vf det_safe = gs_vsel(regular, det, zero + 1.f);
    const gs_vf hx = gs_vsel(regular, gs_vsqrt(gs_vmax(q_max * c / det_safe, zero)) * 1.001f + 0.01f, zero + 2e9f);
    const gs_vf hy = gs_vsel(regular, gs_vsqrt(gs_vmax(q_max * a / det_safe, zero)) * 1.001f + 0.01f, zero + 2e9f);
    const gs_vm on = (op >= alpha_min) & gs_visfinite(mx) & gs_visfinite(my);
    const gs_vf mxs = gs_vsel(on, mx, zero), mys = gs_vsel(on, my, zero);
    const gs_vm x0 = __builtin_convertvector(gs_vfloor(gs_vmax(mxs - hx - 0.5f, zero - 1e9f)), gs_vm);
    const gs_vm x1 = __builtin_convertvector(gs_vceil(gs_vmin(mxs + hx + 0.5f, zero + 1e9f)), gs_vm);
    const gs_vm y0 = __builtin_convertvector(gs_vfloor(gs_vmax(mys - hy - 0.5f, zero - 1e9f)), gs_vm);
    const gs_vm y1 = __builtin_convertvector(gs_vceil(gs_vmin(mys + hy + 0.5f, zero + 1e9f)), gs_vm);
    for (int l = 0; l < GS_LANES; ++l) {
        Splat& s = out[l];
        s.mx = mx[l], s.my = my[l];
        s.A = -0.5f * a[l], s.Bn = -b[l], s.C = -0.5f * c[l];
        s.opacity = op[l];
        s.r = colors[3 * l], s.g = colors[3 * l + 1], s.b = colors[3 * l + 2];
        s.depth = depths[l];
        s.reach = reach[l];
        if (on[l])
            s.x0 = x0[l], s.x1 = x1[l], s.y0 = y0[l], s.y1 = y1[l];
        else  // reaches no pixel
            s.x0 = s.y0 = 1, s.x1 = s.y1 = 0;
    }
}

// One view's packed splats: 16 at a time (pack16); the last few padded to 16.
static void pack_splats(int V, const float* means2d, const float* conics, const float* opacities,
                        const float* colors, const float* depths, float alpha_min, Splat* out) {
    const int blocks = V / GS_LANES, rest = V % GS_LANES;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < blocks; ++k) {
        const int64_t f = (int64_t)k * GS_LANES;
        pack16(means2d + 2 * f, conics + 3 * f, opacities + f, colors + 3 * f, depths + f, alpha_min, out + f);
    }
    if (rest) {
        const int64_t f = (int64_t)blocks * GS_LANES;
        float m[2 * GS_LANES] = {}, c[3 * GS_LANES] = {}, o[GS_LANES] = {}, rgb[3 * GS_LANES] = {}, z[GS_LANES] = {};
        Splat s[GS_LANES];
        std::copy(means2d + 2 * f, means2d + 2 * (int64_t)V, m);
        std::copy(conics + 3 * f, conics + 3 * (int64_t)V, c);
        std::copy(opacities + f, opacities + V, o);
        std::copy(colors + 3 * f, colors + 3 * (int64_t)V, rgb);
        std::copy(depths + f, depths + V, z);
        pack16(m, c, o, rgb, z, alpha_min, s);
        std::copy(s, s + rest, out + f);
    }
}

// Blends the splats of one block's list into the block's pixels, front to back (gs_splat_alpha
// and gs_blend's rule, GS_LANES pixels at once). The block's state stays in registers across the
// list. A pixel's transmittance is stored negated once it has stopped: its lanes then blend
// nothing (alpha is forced to 0) without a separate "done" mask. Returns whether any pixel of
// the block is still blending.
static inline bool blend_block(const Splat* splats, const int* ids, const unsigned char* list, int n, gs_vf px,
                               gs_vf py, float alpha_max, float alpha_min, float t_min, float* trans, float* acc_r,
                               float* acc_g, float* acc_b, float* acc_d, float* med) {
    const gs_vf zero = px * 0.f;
    gs_vf T = *(gs_vf*)trans, ar = *(gs_vf*)acc_r, ag = *(gs_vf*)acc_g, ab = *(gs_vf*)acc_b;
    gs_vf ad = *(gs_vf*)acc_d, md = *(gs_vf*)med;
    const gs_vf cx = px + 0.5f, cy = py + 0.5f;  // pixel centres
    bool open = true;
    for (int j = 0; j < n; ++j) {
        // Every 32 splats, stop when all of the block's pixels have stopped.
        if ((j & 31) == 31 && !(open = gs_vany(T > 0.f))) break;
        const Splat& s = splats[ids[list[j]]];
        const gs_vf dx = s.mx - cx, dy = s.my - cy;
        const gs_vf power = dx * (s.A * dx + s.Bn * dy) + s.C * (dy * dy);
        const gs_vf e = s.opacity * gs_vexp(power);
        gs_vf alpha = gs_vsel(alpha_max < e, zero + alpha_max, e);
        alpha = gs_vsel(power > 0.f, zero, alpha);
        alpha = gs_vsel(alpha < alpha_min, zero, alpha);
        // Stopped pixels (T < 0) get alpha 0. Pixels outside the reach box need no mask: their
        // alpha is below alpha_min (by the box's margin), i.e. 0 already.
        alpha = gs_vsel(T > 0.f, alpha, zero);
        const gs_vf T_next = T * (1.f - alpha);
        const gs_vm stop = (alpha > 0.f) & (T_next < t_min);
        const gs_vf w = gs_vsel(stop, zero, alpha * T);
        ar += w * s.r;
        ag += w * s.g;
        ab += w * s.b;
        ad += w * s.depth;
        // gs_blend's median rule: this splat takes T across GS_MEDIAN_T (a stopped one leaves T
        // as it was). At most once per pixel, added to 0: exactly the depth.
        md += gs_vsel((stop == 0) & (T > GS_MEDIAN_T) & (T_next <= GS_MEDIAN_T), zero + s.depth, zero);
        T = gs_vsel(stop, -T, T_next);
    }
    *(gs_vf*)trans = T, *(gs_vf*)acc_r = ar, *(gs_vf*)acc_g = ag, *(gs_vf*)acc_b = ab;
    *(gs_vf*)acc_d = ad, *(gs_vf*)med = md;
    return open && gs_vany(T > 0.f);
}

// A tile's splats are taken CHUNK at a time (in depth order). A first pass sorts each splat into
// the lists of the blocks it reaches: a block of its reach box none of whose pixel centres it
// reaches (the box's corners: about half of them on playbot) gets nothing. Then each block
// blends its own list. Every pixel still blends the same splats in the same order, so the image
// is what blending splat by splat gives, bit for bit; but the blending loop has no branch on a
// splat's size and keeps a block's pixels in registers.
constexpr int GS_CHUNK = 128;

// Whether a splat reaches one of a block's pixel centres (dx, dy: the centre's offsets from
// them): power >= reach, a conservative test (see Splat::reach).
static inline bool reaches(const Splat& s, gs_vf dx, gs_vf dy) {
    return gs_vany(dx * (s.A * dx + s.Bn * dy) + s.C * (dy * dy) >= s.reach);
}

// The lists of a chunk's blocks from each entry's bit mask of blocks (bits[j], bit k: block k),
// in entry order. bits is readable and zero up to the next multiple of 8 entries; each list has
// 8 bytes of slack.
template <int NB>
static inline void block_lists(const uint64_t* bits, int n, unsigned char (*lists)[GS_CHUNK + 8], int* counts) {
    static_assert(NB <= 64, "one bit per block");
    uint64_t all = 0;
    for (int j = 0; j < n; ++j) all |= bits[j];
    for (int k = 0; k < NB; ++k) {
        int c = 0;
        if (all >> k & 1) {
#if defined(__AVX512F__)
            // 8 entries at a time: their indices compressed by the block's bit.
            const __m512i bit = _mm512_set1_epi64((long long)(1ull << k));
            const __m512i iota = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
            for (int j0 = 0; j0 < n; j0 += 8) {
                const __mmask8 m = _mm512_test_epi64_mask(_mm512_loadu_si512(bits + j0), bit);
                const __m512i idx = _mm512_maskz_compress_epi64(m, _mm512_add_epi64(iota, _mm512_set1_epi64(j0)));
                _mm_storel_epi64((__m128i*)(lists[k] + c), _mm512_cvtepi64_epi8(idx));
                c += __builtin_popcount(m);
            }
#else
            for (int j = 0; j < n; ++j) {
                lists[k][c] = (unsigned char)j;
                c += (int)(bits[j] >> k & 1);
            }
#endif
        }
        counts[k] = c;
    }
}

// A block's final pixels from its blended state, in place (a stopped pixel's T is stored
// negated): trans becomes alpha, acc_r/g/b the colour over the background, acc_d the depth.
static inline void finish_block(float* trans, float* acc_r, float* acc_g, float* acc_b, float* acc_d,
                                const float* background) {
    gs_vf& t = *(gs_vf*)trans;
    const gs_vf T = gs_vmax(t, -t), zero = T * 0.f;
    const gs_vf a = 1.f - T;
    *(gs_vf*)acc_r += T * background[0];
    *(gs_vf*)acc_g += T * background[1];
    *(gs_vf*)acc_b += T * background[2];
    *(gs_vf*)acc_d = gs_vsel(a > 0.f, *(gs_vf*)acc_d / gs_vmax(a, zero + 1e-12f), zero);
    t = a;
}

template <int TILE>
static int64_t rasterize_tiles(int E, int V, const Splat* splats, const int* gaussian_ids, const int* ranges,
                               int tiles_x, int tiles_y, int width, int height, float alpha_max, float alpha_min,
                               float t_min, const float* background, float* out_rgb, float* out_alpha,
                               float* out_depth, float* out_median, const unsigned char* mask) {
    constexpr int L = GS_LANES, BW = GS_BLOCK_W, BH = GS_BLOCK_H;
    constexpr int BX = TILE / BW, BY = TILE / BH, NB = BX * BY, P = TILE * TILE;
    static_assert(TILE % BW == 0 && TILE % BH == 0, "tiles hold whole blocks");
    static_assert(GS_CHUNK <= 256 && GS_CHUNK % 8 == 0, "list entries are bytes, taken 8 at a time");
    // Lane l of a block is its pixel (l % BW, l / BW).
    gs_vf lane_x, lane_y;
    for (int l = 0; l < L; ++l) {
        ((float*)&lane_x)[l] = (float)(l % BW);
        ((float*)&lane_y)[l] = (float)(l / BW);
    }
    const gs_vf lane_cx = lane_x + 0.5f, lane_cy = lane_y + 0.5f;  // the lanes' pixel centres
    const int64_t T = (int64_t)tiles_x * tiles_y;
    int64_t evaluations = 0;
#pragma omp parallel reduction(+ : evaluations)
    {
        // Per thread: every block's list of the current chunk, and each entry's blocks.
        std::vector<unsigned char> list_store((size_t)NB * (GS_CHUNK + 8));
        unsigned char(*lists)[GS_CHUNK + 8] = reinterpret_cast<unsigned char(*)[GS_CHUNK + 8]>(list_store.data());
        alignas(64) uint64_t bits[GS_CHUNK + 8];
#pragma omp for schedule(dynamic, 2)
        for (int64_t t = 0; t < E * T; ++t) {
            // Per-pixel state, block-major (pixel l of block k at k * L + l), structure of arrays.
            alignas(64) float trans[P], acc_r[P], acc_g[P], acc_b[P], acc_d[P], med[P];
            bool block_open[NB];
            int counts[NB];
            const int64_t eye = t / T, local = t % T;
            const int x0 = (int)(local % tiles_x) * TILE, y0 = (int)(local / tiles_x) * TILE;
            const int x1 = std::min(x0 + TILE, width), y1 = std::min(y0 + TILE, height);
            // The wanted pixels' box: splats are clipped to it (pixel reuse rasterizes a few
            // pixels of a tile; the rest of its blocks cost nothing).
            int wx0 = x1, wx1 = x0, wy0 = y1, wy1 = y0, n_open = 0;
            if (!mask && x1 - x0 == TILE && y1 - y0 == TILE) {  // every pixel wanted (most tiles)
                for (int i = 0; i < P; ++i) {
                    trans[i] = 1.f;
                    acc_r[i] = acc_g[i] = acc_b[i] = acc_d[i] = med[i] = 0.f;
                }
                for (int k = 0; k < NB; ++k) block_open[k] = true;
                wx0 = x0, wx1 = x1, wy0 = y0, wy1 = y1, n_open = NB;
            } else {
                for (int k = 0; k < NB; ++k) {
                    bool open = false;
                    for (int l = 0; l < L; ++l) {
                        const int i = k * L + l;
                        const int px = x0 + (k % BX) * BW + l % BW, py = y0 + (k / BX) * BH + l / BW;
                        acc_r[i] = acc_g[i] = acc_b[i] = acc_d[i] = med[i] = 0.f;
                        // Pixels beyond the image edge, and pixels not wanted, start out stopped.
                        const bool wanted = px < width && py < height &&
                                            (!mask || mask[((int64_t)eye * height + py) * (int64_t)width + px]);
                        trans[i] = wanted ? 1.f : -1.f;
                        open |= wanted;
                        if (wanted) {
                            wx0 = std::min(wx0, px), wx1 = std::max(wx1, px + 1);
                            wy0 = std::min(wy0, py), wy1 = std::max(wy1, py + 1);
                        }
                    }
                    block_open[k] = open;
                    n_open += open;
                }
            }
            const int* ids = gaussian_ids + ranges[2 * t];
            const int n_splats = ranges[2 * t + 1] - ranges[2 * t];
            const Splat* view_splats = splats + eye * V;
            for (int c0 = 0; c0 < n_splats && n_open > 0; c0 += GS_CHUNK) {
                const int n = std::min(GS_CHUNK, n_splats - c0);
                uint64_t open_bits = 0;
                for (int k = 0; k < NB; ++k) open_bits |= (uint64_t)block_open[k] << k;
                for (int j = n; j < GS_CHUNK + 8; ++j) bits[j] = 0;
                for (int j = 0; j < n; ++j) {
                    // Splats arrive in depth order, scattered in memory: fetch a few ahead.
                    if (c0 + j + 16 < n_splats) __builtin_prefetch(&view_splats[ids[c0 + j + 16]]);
                    const Splat& s = view_splats[ids[c0 + j]];
                    // Pixel columns/rows whose centre lies within the reach box, inside the wanted box.
                    const int bx0 = std::max(s.x0, wx0), bx1 = std::min(s.x1, wx1);
                    const int by0 = std::max(s.y0, wy0), by1 = std::min(s.y1, wy1);
                    const bool any = bx0 < bx1 && by0 < by1;
                    if (any) evaluations += (int64_t)(bx1 - bx0) * (by1 - by0);
                    // The reach box's blocks; clamped into the tile when it is empty.
                    const int kx0 = std::max(0, (bx0 - x0) / BW), kx1 = std::min(BX - 1, (bx1 - 1 - x0) / BW);
                    const int ky0 = std::max(0, (by0 - y0) / BH), ky1 = std::min(BY - 1, (by1 - 1 - y0) / BH);
                    uint64_t hit = 0;
                    if (kx1 - kx0 <= 1 && ky1 - ky0 <= 1) {
                        // The common case, a box within 2x2 blocks: those four, without a branch
                        // (a block past the tile's edge is a repeat of the last one, disabled).
                        const int kxa = std::min(kx0, BX - 1), kya = std::min(ky0, BY - 1);
                        const int kxb = std::min(kxa + 1, BX - 1), kyb = std::min(kya + 1, BY - 1);
                        const uint64_t wide = kx1 > kx0, tall = ky1 > ky0;
                        const gs_vf dxa = s.mx - ((float)(x0 + kxa * BW) + lane_cx);
                        const gs_vf dxb = s.mx - ((float)(x0 + kxb * BW) + lane_cx);
                        const gs_vf dya = s.my - ((float)(y0 + kya * BH) + lane_cy);
                        const gs_vf dyb = s.my - ((float)(y0 + kyb * BH) + lane_cy);
                        hit = (uint64_t)reaches(s, dxa, dya) << (kya * BX + kxa) |
                              (uint64_t)(reaches(s, dxb, dya) & wide) << (kya * BX + kxb) |
                              (uint64_t)(reaches(s, dxa, dyb) & tall) << (kyb * BX + kxa) |
                              (uint64_t)(reaches(s, dxb, dyb) & wide & tall) << (kyb * BX + kxb);
                    } else {
                        for (int ky = ky0; ky <= ky1; ++ky)
                            for (int kx = kx0; kx <= kx1; ++kx) {
                                const gs_vf dx = s.mx - ((float)(x0 + kx * BW) + lane_cx);
                                const gs_vf dy = s.my - ((float)(y0 + ky * BH) + lane_cy);
                                hit |= (uint64_t)reaches(s, dx, dy) << (ky * BX + kx);
                            }
                    }
                    bits[j] = any ? hit & open_bits : 0;
                }
                block_lists<NB>(bits, n, lists, counts);
                for (int k = 0; k < NB; ++k) {
                    if (!counts[k]) continue;
                    const gs_vf px = (float)(x0 + (k % BX) * BW) + lane_x, py = (float)(y0 + (k / BX) * BH) + lane_y;
                    if (!blend_block(view_splats, ids + c0, lists[k], counts[k], px, py, alpha_max, alpha_min, t_min,
                                     trans + k * L, acc_r + k * L, acc_g + k * L, acc_b + k * L, acc_d + k * L,
                                     med + k * L)) {
                        block_open[k] = false;
                        --n_open;
                    }
                }
            }
            // Back to row-major images, one block row (BW pixels) at a time.
            for (int k = 0; k < NB; ++k)
                finish_block(trans + k * L, acc_r + k * L, acc_g + k * L, acc_b + k * L, acc_d + k * L, background);
            for (int y = y0; y < y1; ++y)
                for (int xb = x0; xb < x1; xb += BW) {
                    const int by = y - y0, i = ((by / BH) * BX + (xb - x0) / BW) * L + (by % BH) * BW;
                    const int64_t o = (eye * height + y) * (int64_t)width + xb;
                    const int n = std::min(BW, x1 - xb);
                    if (n == BW) {  // a whole block row: fixed-length copies
                        std::memcpy(out_alpha + o, trans + i, sizeof(float) * BW);
                        std::memcpy(out_depth + o, acc_d + i, sizeof(float) * BW);
                        std::memcpy(out_median + o, med + i, sizeof(float) * BW);
                        for (int l = 0; l < BW; ++l) {
                            out_rgb[3 * (o + l)] = acc_r[i + l];
                            out_rgb[3 * (o + l) + 1] = acc_g[i + l];
                            out_rgb[3 * (o + l) + 2] = acc_b[i + l];
                        }
                    } else {
                        for (int l = 0; l < n; ++l) {
                            out_alpha[o + l] = trans[i + l];
                            out_depth[o + l] = acc_d[i + l];
                            out_median[o + l] = med[i + l];
                            out_rgb[3 * (o + l)] = acc_r[i + l];
                            out_rgb[3 * (o + l) + 1] = acc_g[i + l];
                            out_rgb[3 * (o + l) + 2] = acc_b[i + l];
                        }
                    }
                }
        }
    }
    return evaluations;
}

extern "C" int64_t gs_rasterize_cpu(const GsRasterParams* p) {
    const int E = p->E, V = p->V, tile_px = p->tile_px, tiles_x = p->tiles_x, tiles_y = p->tiles_y;
    const int width = p->width, height = p->height;
    const float alpha_max = p->alpha_max, alpha_min = p->alpha_min, t_min = p->t_min;
    const float *means2d = p->means2d, *conics = p->conics, *opacities = p->opacities, *colors = p->colors;
    const float *depths = p->depths, *background = p->background;
    const int *gaussian_ids = p->gaussian_ids, *ranges = p->ranges;
    float *out_rgb = p->out_rgb, *out_alpha = p->out_alpha, *out_depth = p->out_depth;
    float* out_median = p->out_median_depth;
    const unsigned char* mask = p->pixel_mask;
    // One view at a time: its packed splats (V records) stay small enough for the caches, where
    // both eyes' records together would not for large scenes (measured on the 500k-Gaussian scene).
    const int64_t T = (int64_t)tiles_x * tiles_y, HW = (int64_t)height * width;
    Splat* splats = static_cast<Splat*>(workspace(WS_SPLATS, sizeof(Splat) * (size_t)V));
    if (!splats) {
        workspace_trim();
        return -2;  // out of memory: the wrapper raises
    }
    int64_t evaluations = 0;
    for (int e = 0; e < E; ++e) {
        const int64_t f0 = (int64_t)e * V;
        pack_splats(V, means2d + 2 * f0, conics + 3 * f0, opacities, colors + 3 * f0, depths + f0, alpha_min, splats);
#define GS_RASTERIZE(TILE)                                                                                           \
    rasterize_tiles<TILE>(1, V, splats, gaussian_ids, ranges + 2 * e * T, tiles_x, tiles_y, width, height,     \
                          alpha_max, alpha_min, t_min, background, out_rgb + 3 * e * HW, out_alpha + e * HW,          \
                          out_depth + e * HW, out_median + e * HW, mask ? mask + e * HW : nullptr)
        switch (tile_px) {
            case 8: evaluations += GS_RASTERIZE(8); break;
            case 16: evaluations += GS_RASTERIZE(16); break;
            case 32: evaluations += GS_RASTERIZE(32); break;
            default: return -1;  // the wrapper only passes 8, 16 or 32
        }
    }
    workspace_trim();
    return evaluations;
#undef GS_RASTERIZE
}
