// Derive: the Gaussians of the visible anchors of a structured scene (Scaffold-GS / Octree-GS),
// the three MLPs evaluated per anchor with their weights in shared memory and the activations
// and compaction fused (two passes: opacities and counts, then the kept Gaussians at the rows an
// exclusive prefix sum of the counts gives).
//
// Contract (contiguous, row-major; n visible anchors, A anchors, k offsets, F features):
//   ids i64[n] into the anchors; anchors f32[A,3]; features f32[A,F]; levels f32[A];
//   offsets f32[A,k,3]; scales f32[A,6] (linear); viewpoint f32[3];
//   layers i32[L,4], mlps i32[9], weights f32[W] (layout in common.cuh)
//   count: -> opac f32[n,k], counts i32[n]
//   emit:  opac, counts, starts i64[n] -> means f32[M,3], quats f32[M,4], out_scales f32[M,3],
//          opacities f32[M], sh f32[M,3]
// One thread per anchor; grid = ceil(n / blockDim.x). Dynamic shared memory: W floats when
// use_shared is 1 (the weights are copied there by the block), else 0 (read from global memory).
#include "common.cuh"

__device__ const float* gs_stage_weights(const float* __restrict__ weights, int n_weights, int use_shared) {
    extern __shared__ float s_weights[];
    if (!use_shared) return weights;
    for (int i = threadIdx.x; i < n_weights; i += blockDim.x) s_weights[i] = weights[i];
    __syncthreads();
    return s_weights;
}

extern "C" __global__ void derive_count_kernel(long long n, const long long* __restrict__ ids,
                                               const float* __restrict__ anchors, const float* __restrict__ features,
                                               const float* __restrict__ levels, int F, int k,
                                               const float* __restrict__ viewpoint, int add_level,
                                               const int* __restrict__ layers, const int* __restrict__ mlps,
                                               const float* __restrict__ weights, int n_weights, int use_shared,
                                               float* __restrict__ opac, int* __restrict__ counts) {
    const float* w = gs_stage_weights(weights, n_weights, use_shared);
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x[GS_MLP_MAX_WIDTH], a[GS_MLP_MAX_WIDTH], b[GS_MLP_MAX_WIDTH];
    const long long id = ids[i];
    counts[i] = gs_derive_opacity(anchors + 3 * id, features + (long long)F * id, F, levels[id], viewpoint, add_level,
                                  layers, mlps, w, k, x, a, b, opac + (long long)k * i);
}

extern "C" __global__ void derive_emit_kernel(long long n, const long long* __restrict__ ids,
                                              const float* __restrict__ anchors, const float* __restrict__ offsets,
                                              const float* __restrict__ features, const float* __restrict__ scales,
                                              const float* __restrict__ levels, int F, int k,
                                              const float* __restrict__ viewpoint, int add_level,
                                              const int* __restrict__ layers, const int* __restrict__ mlps,
                                              const float* __restrict__ weights, int n_weights, int use_shared,
                                              const float* __restrict__ opac, const int* __restrict__ counts,
                                              const long long* __restrict__ starts, float* __restrict__ means,
                                              float* __restrict__ quats, float* __restrict__ out_scales,
                                              float* __restrict__ opacities, float* __restrict__ sh) {
    const float* w = gs_stage_weights(weights, n_weights, use_shared);
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || counts[i] == 0) return;
    float x[GS_MLP_MAX_WIDTH], a[GS_MLP_MAX_WIDTH], b[GS_MLP_MAX_WIDTH];
    const long long id = ids[i];
    gs_derive_emit(anchors + 3 * id, offsets + 3LL * k * id, features + (long long)F * id, scales + 6 * id, F,
                   levels[id], viewpoint, add_level, layers, mlps, w, k, opac + (long long)k * i, starts[i], x, a, b,
                   means, quats, out_scales, opacities, sh);
}
