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
//              ([start, end) of each tile's run; start == end for empty tiles)
//   rasterize: means2d f32[E*V,2], conics f32[E*V,3], opacities f32[V], colors f32[E*V,3],
//              depths f32[E*V], gaussian_ids i32[I] (0..V-1, in key order), ranges i32[E*T,2],
//              background f32[3], pixel_mask u8[E,H,W] or null (only those pixels wanted: the
//              others start finished, and splats are clipped to the wanted pixels' box)
//              -> rgb f32[E,H,W,3], alpha f32[E,H,W], depth f32[E,H,W], median depth f32[E,H,W];
//              returns the number of Gaussian-pixel evaluations.
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
#include <vector>

#include "common.cuh"

#define GS_ABI_VERSION 8

extern "C" {

int gs_abi_version() { return GS_ABI_VERSION; }

// sizeof(GsView), so the wrapper can check that its ctypes mirror has the same layout.
int gs_view_size() { return (int)sizeof(GsView); }

void gs_cull_cpu(const GsCullParams* p) {
    const int E = p->E;
    const int64_t N = p->N;
    const float *means = p->means, *scales = p->scales;
    const GsView* views = p->views;
    const float eps2d = p->eps2d, extent_sigma = p->extent_sigma, margin_px = p->margin_px;
    unsigned char* keep = p->keep;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; ++i) {
        const float* s = scales + 3 * i;
        const float s_max = gs_max(s[0], gs_max(s[1], s[2]));
        bool k = false;
        for (int e = 0; e < E && !k; ++e) k = gs_cull_keep(means + 3 * i, s_max, views[e], eps2d, extent_sigma, margin_px);
        keep[i] = k;
    }
}

void gs_shade_cpu(const GsShadeParams* p) {
    const int E = p->E, V = p->V, K = p->K, degree = p->degree;
    const float *means = p->means, *quats = p->quats, *scales = p->scales, *sh = p->sh, *positions = p->positions;
    float *covars = p->covars, *colors = p->colors;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < V; ++i) {
        gs_quat_scale_to_covar(quats + 4 * i, scales + 3 * i, covars + 6 * i);
        for (int e = 0; e < E; ++e) {
            const float* m = means + 3 * i;
            const float* o = positions + 3 * e;
            gs_eval_sh(degree, sh + (int64_t)K * 3 * i, m[0] - o[0], m[1] - o[1], m[2] - o[2],
                       colors + 3 * ((int64_t)e * V + i));
        }
    }
}

void gs_project_cpu(const GsProjectParams* p) {
    const int E = p->E, V = p->V;
    const float *means = p->means, *covars = p->covars;
    const GsView* views = p->views;
    const float eps2d = p->eps2d, extent_sigma = p->extent_sigma;
    float *means2d = p->means2d, *conics = p->conics, *depths = p->depths;
    int* radii = p->radii;
    for (int e = 0; e < E; ++e) {
        const GsView view = views[e];
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < V; ++i) {
            const int64_t f = (int64_t)e * V + i;
            gs_project(means + 3 * i, covars + 6 * i, view, eps2d, extent_sigma, means2d + 2 * f, conics + 3 * f,
                       depths + f, radii + 2 * f);
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

// Indices 0..V-1 ordered by depth: a stable LSD radix sort of the float bits in three passes of
// 11 bits (positive floats order like their bits; equal depths keep index order).
static std::vector<uint32_t> depth_order(const float* z, int V) {
    std::vector<uint32_t> order(V), scratch(V);
    std::vector<int64_t> bucket(1 << 11);
    for (int i = 0; i < V; ++i) order[i] = (uint32_t)i;
    for (int shift = 0; shift < 32; shift += 11) {
        std::fill(bucket.begin(), bucket.end(), 0);
        for (int i = 0; i < V; ++i) ++bucket[(gs_float_bits(z[order[i]]) >> shift) & 2047];
        int64_t sum = 0;
        for (auto& b : bucket) {
            const int64_t c = b;
            b = sum;
            sum += c;
        }
        for (int i = 0; i < V; ++i) scratch[bucket[(gs_float_bits(z[order[i]]) >> shift) & 2047]++] = order[i];
        std::swap(order, scratch);
    }
    return order;
}

// Sorted intersections without a key sort: each view's Gaussians are ordered by depth
// (depth_order; once for all views when shared_depth says every Gaussian has the same depth in
// every view, as with parallel eyes), then emitted in that order into per-tile slots found by a
// counting sort over tile ids. Each tile's run is then in depth order with ties in index order:
// exactly the order a stable sort of the (tile, depth) keys gives.
void gs_bin_sorted_cpu(const GsBinParams* p) {
    const int E = p->E, V = p->V, tile_px = p->tile_px, tiles_x = p->tiles_x, tiles_y = p->tiles_y;
    const int shared_depth = p->shared_depth;
    const float *means2d = p->means2d, *depths = p->depths;
    const int *radii = p->radii, *counts = p->counts;
    int64_t* keys = reinterpret_cast<int64_t*>(p->keys);
    int *gaussian_ids = p->ids, *ranges = p->ranges;
    const int64_t T = (int64_t)tiles_x * tiles_y;
    // Tiles per view are disjoint, so the views are binned in parallel (the two eyes of a frame).
    std::vector<int64_t> cursor(E * T + 1, 0);
#pragma omp parallel for schedule(static, 1)
    for (int e = 0; e < E; ++e) {
        for (int64_t f = (int64_t)e * V; f < (int64_t)(e + 1) * V; ++f) {
            if (!counts[f]) continue;
            int lo[2], hi[2];
            gs_tile_rect(means2d[2 * f], means2d[2 * f + 1], radii[2 * f], radii[2 * f + 1], tile_px, tiles_x,
                         tiles_y, lo, hi);
            for (int ty = lo[1]; ty < hi[1]; ++ty)
                for (int tx = lo[0]; tx < hi[0]; ++tx) ++cursor[e * T + (int64_t)ty * tiles_x + tx + 1];
        }
    }
    for (int64_t t = 0; t < E * T; ++t) {  // tile ranges from the per-tile counts
        cursor[t + 1] += cursor[t];
        ranges[2 * t] = (int)cursor[t];
        ranges[2 * t + 1] = (int)cursor[t + 1];
    }
    // With shared depths (parallel eyes) one depth order serves every view.
    const int n_orders = shared_depth ? 1 : E;
    std::vector<std::vector<uint32_t>> orders(n_orders);
#pragma omp parallel for schedule(static, 1)
    for (int e = 0; e < n_orders; ++e) orders[e] = depth_order(depths + (int64_t)e * V, V);
#pragma omp parallel for schedule(static, 1)
    for (int e = 0; e < E; ++e) {
        const float* z = depths + (int64_t)e * V;
        const std::vector<uint32_t>& order = orders[shared_depth ? 0 : e];
        for (int i = 0; i < V; ++i) {
            const int g = (int)order[i];
            const int64_t f = (int64_t)e * V + g;
            if (!counts[f]) continue;
            int lo[2], hi[2];
            gs_tile_rect(means2d[2 * f], means2d[2 * f + 1], radii[2 * f], radii[2 * f + 1], tile_px, tiles_x,
                         tiles_y, lo, hi);
            const int64_t depth_bits = (int64_t)gs_float_bits(z[g]);
            for (int ty = lo[1]; ty < hi[1]; ++ty)
                for (int tx = lo[0]; tx < hi[0]; ++tx) {
                    const int64_t tile = (int64_t)e * T + (int64_t)ty * tiles_x + tx;
                    const int64_t at = cursor[tile]++;
                    keys[at] = (tile << GS_TILE_KEY_SHIFT) | depth_bits;
                    gaussian_ids[at] = g;
                }
        }
    }
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

// Pixels a splat can reach with alpha >= alpha_min: alpha = opacity * exp(-q/2) with
// q = d^T conic d, so q <= 2 ln(opacity / alpha_min), an ellipse whose half extent along x is
// sqrt(2 ln(opacity / alpha_min) * cov_xx) with cov = conic^-1. A small relative and absolute
// margin absorbs float rounding (far larger than it, far smaller than a pixel); false when the
// splat can reach no pixel.
static inline bool reach_box(const float* conic, float opacity, float alpha_min, float* half_x, float* half_y) {
    if (!(opacity >= alpha_min)) return false;
    const float a = conic[0], b = conic[1], c = conic[2];
    const float det = a * c - b * b;
    const float q = 2.f * std::log(opacity / alpha_min);
    if (!(det > 0.f) || !(a > 0.f) || !(c > 0.f)) {  // degenerate conic: the whole tile
        *half_x = *half_y = INFINITY;
        return true;
    }
    *half_x = std::sqrt(q * c / det) * 1.001f + 0.01f;
    *half_y = std::sqrt(q * a / det) * 1.001f + 0.01f;
    return true;
}

// One tile's pixels blended splat by splat. TILE is a compile-time constant so a pixel row is
// one fixed-length vector loop; lanes outside the splat's reach box are masked off.
// Everything the blending loop reads about one (view, Gaussian), packed into one 64-byte cache
// line: tiles visit Gaussians in depth order, i.e. at random, and one miss per splat beats six.
struct alignas(64) Splat {
    float mx, my;      // centre, pixels
    float A, Bn, C;    // pre-scaled conic: power = dx (A dx + Bn dy) + C dy^2
    float opacity;
    float r, g, b;     // colour
    float depth;
    float hx, hy;      // reach half extents (pixels); hx < 0: reaches no pixel
};

static void pack_splats(int64_t EV, int V, const float* means2d, const float* conics, const float* opacities,
                        const float* colors, const float* depths, float alpha_min, Splat* out) {
#pragma omp parallel for schedule(static)
    for (int64_t f = 0; f < EV; ++f) {
        Splat& s = out[f];
        s.mx = means2d[2 * f];
        s.my = means2d[2 * f + 1];
        s.A = -0.5f * conics[3 * f];
        s.Bn = -conics[3 * f + 1];
        s.C = -0.5f * conics[3 * f + 2];
        s.opacity = opacities[f % V];
        s.r = colors[3 * f];
        s.g = colors[3 * f + 1];
        s.b = colors[3 * f + 2];
        s.depth = depths[f];
        if (!reach_box(conics + 3 * f, s.opacity, alpha_min, &s.hx, &s.hy)) s.hx = s.hy = -1.f;
    }
}

template <int TILE>
static int64_t rasterize_tiles(int E, int V, const Splat* splats, const int* gaussian_ids, const int* ranges,
                               int tiles_x, int tiles_y, int width, int height, float alpha_max, float alpha_min,
                               float t_min, const float* background, float* out_rgb, float* out_alpha,
                               float* out_depth, float* out_median, const unsigned char* mask) {
    constexpr int P = TILE * TILE;
    const int64_t T = (int64_t)tiles_x * tiles_y;
    int64_t evaluations = 0;
#pragma omp parallel for schedule(dynamic, 2) reduction(+ : evaluations)
    for (int64_t t = 0; t < E * T; ++t) {
        // Per-pixel state, structure of arrays so the row loop vectorises.
        alignas(64) float trans[P], acc_r[P], acc_g[P], acc_b[P], acc_d[P], med[P];
        alignas(64) float done[P];  // 1 once the pixel has stopped (float keeps the vector lanes uniform)
        const int64_t eye = t / T, local = t % T;
        const int x0 = (int)(local % tiles_x) * TILE, y0 = (int)(local / tiles_x) * TILE;
        const int x1 = std::min(x0 + TILE, width), y1 = std::min(y0 + TILE, height);
        // The wanted pixels' box: splats are clipped to it (pixel reuse rasterizes a few pixels
        // of a tile; the rest of its rows and half-rows cost nothing).
        int wx0 = x1, wx1 = x0, wy0 = y1, wy1 = y0;
        for (int p = 0; p < P; ++p) {
            trans[p] = 1.f;
            acc_r[p] = acc_g[p] = acc_b[p] = acc_d[p] = med[p] = 0.f;
            // Pixels beyond the image edge, and pixels not wanted, start out finished.
            const int px = x0 + p % TILE, py = y0 + p / TILE;
            const bool wanted = px < width && py < height &&
                                (!mask || mask[((int64_t)eye * height + py) * (int64_t)width + px]);
            done[p] = wanted ? 0.f : 1.f;
            if (wanted) {
                wx0 = std::min(wx0, px), wx1 = std::max(wx1, px + 1);
                wy0 = std::min(wy0, py), wy1 = std::max(wy1, py + 1);
            }
        }
        bool tile_done = wx0 >= wx1;
        for (int i = ranges[2 * t], n = 0; i < ranges[2 * t + 1] && !tile_done; ++i, ++n) {
            // Every 32 splats, stop the tile when all of its pixels have stopped.
            if ((n & 31) == 31) {
                float open = 0.f;
#pragma omp simd reduction(+ : open)
                for (int p = 0; p < P; ++p) open += 1.f - done[p];
                tile_done = open == 0.f;
            }
            // Splats arrive in depth order, scattered in memory: fetch a few ahead.
            if (i + 8 < ranges[2 * t + 1]) __builtin_prefetch(&splats[eye * V + gaussian_ids[i + 8]]);
            const Splat& s = splats[eye * V + gaussian_ids[i]];
            const float mx = s.mx, my = s.my, hx = s.hx, hy = s.hy;
            if (hx < 0.f) continue;
            // Pixel columns/rows whose centre lies within the reach box, inside this tile.
            const int bx0 = (int)std::floor(std::max(mx - hx - 0.5f, (float)wx0));
            const int bx1 = (int)std::ceil(std::min(mx + hx + 0.5f, (float)wx1));
            const int by0 = (int)std::floor(std::max(my - hy - 0.5f, (float)wy0));
            const int by1 = (int)std::ceil(std::min(my + hy + 0.5f, (float)wy1));
            if (bx0 >= bx1 || by0 >= by1) continue;
            const float fx0 = (float)bx0, fx1 = (float)bx1;
            const float A = s.A, Bn = s.Bn, C = s.C, op = s.opacity, z = s.depth;
            const float cr = s.r, cg = s.g, cb = s.b;
            // Rows are processed in halves of HALF pixels (one 256-bit vector), only the halves the
            // reach box overlaps: small splats, the common case, then cost half the lanes.
            constexpr int HALF = TILE >= 16 ? 8 : TILE;
            const int h0 = (bx0 - x0) / HALF, h1 = (bx1 - x0 - 1) / HALF;
            for (int y = by0; y < by1; ++y) {
                const float dy = my - ((float)y + 0.5f);
                for (int h = h0; h <= h1; ++h) {
                    const int off = (y - y0) * TILE + h * HALF;
                    float* tr = trans + off;
                    float* ar = acc_r + off;
                    float* ag = acc_g + off;
                    float* ab = acc_b + off;
                    float* ad = acc_d + off;
                    float* md = med + off;
                    float* dn = done + off;
                    const float xbase = (float)(x0 + h * HALF);
#pragma omp simd simdlen(HALF)
                    for (int x = 0; x < HALF; ++x) {
                        const float px = xbase + (float)x;
                        const float a = gs_splat_alpha(mx - (px + 0.5f), dy, A, Bn, C, op, alpha_max, alpha_min);
                        // Lanes outside the reach box, or of stopped pixels, get alpha 0 (selects, no branches).
                        const float alpha = (px >= fx0 && px < fx1 && dn[x] == 0.f) ? a : 0.f;
                        const float Tp = tr[x];
                        const float T_next = Tp * (1.f - alpha);
                        const float stop = (alpha > 0.f && T_next < t_min) ? 1.f : 0.f;  // gs_blend's rule
                        const float w = alpha * Tp * (1.f - stop);
                        ar[x] += w * cr;
                        ag[x] += w * cg;
                        ab[x] += w * cb;
                        ad[x] += w * z;
                        const float T_new = stop > 0.f ? Tp : T_next;
                        // gs_blend's median rule: this splat takes T across GS_MEDIAN_T (a stopped one
                        // leaves T as it was). At most once per pixel, added to 0: exactly z.
                        md[x] += (Tp > GS_MEDIAN_T ? z : 0.f) * (T_new <= GS_MEDIAN_T ? 1.f : 0.f);
                        tr[x] = T_new;
                        dn[x] = gs_max(dn[x], stop);
                    }
                }
            }
            evaluations += (int64_t)(bx1 - bx0) * (by1 - by0);
        }
        for (int y = y0; y < y1; ++y)
            for (int x = x0; x < x1; ++x) {
                const int p = (y - y0) * TILE + (x - x0);
                const int64_t o = (eye * height + y) * (int64_t)width + x;
                const float a = 1.f - trans[p];
                out_rgb[3 * o] = acc_r[p] + trans[p] * background[0];
                out_rgb[3 * o + 1] = acc_g[p] + trans[p] * background[1];
                out_rgb[3 * o + 2] = acc_b[p] + trans[p] * background[2];
                out_alpha[o] = a;
                out_depth[o] = a > 0.f ? acc_d[p] / std::max(a, 1e-12f) : 0.f;
                out_median[o] = med[p];
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
    std::vector<Splat> splats(V);
    int64_t evaluations = 0;
    for (int e = 0; e < E; ++e) {
        const int64_t f0 = (int64_t)e * V;
        pack_splats(V, V, means2d + 2 * f0, conics + 3 * f0, opacities, colors + 3 * f0, depths + f0, alpha_min,
                    splats.data());
#define GS_RASTERIZE(TILE)                                                                                           \
    rasterize_tiles<TILE>(1, V, splats.data(), gaussian_ids, ranges + 2 * e * T, tiles_x, tiles_y, width, height,     \
                          alpha_max, alpha_min, t_min, background, out_rgb + 3 * e * HW, out_alpha + e * HW,          \
                          out_depth + e * HW, out_median + e * HW, mask ? mask + e * HW : nullptr)
        switch (tile_px) {
            case 8: evaluations += GS_RASTERIZE(8); break;
            case 16: evaluations += GS_RASTERIZE(16); break;
            case 32: evaluations += GS_RASTERIZE(32); break;
            default: return -1;  // the wrapper only passes 8, 16 or 32
        }
    }
    return evaluations;
#undef GS_RASTERIZE
}
