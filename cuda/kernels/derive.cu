// Derive: the Gaussians of the visible anchors of a structured scene (Scaffold-GS / Octree-GS),
// the three MLPs evaluated per anchor with their weights in shared memory and the activations
// and compaction fused (two passes: opacities and counts, then the kept Gaussians at the rows an
// exclusive prefix sum of the counts gives).
//
// Contract (GsDeriveParams, contiguous, row-major; n visible anchors, A anchors, k offsets, F features):
//   ids i64[n] into the anchors; anchors f32[A,3]; features f32[A,F]; levels f32[A];
//   offsets f32[A,k,3]; scales f32[A,6] (linear); viewpoint f32[3];
//   layers i32[L,4], mlps i32[9], weights f32[W] (layout in common.cuh)
//   count: -> opac f32[n,k], counts i32[n]
//   emit:  opac, counts, starts i64[n] -> means f32[M,3], quats f32[M,4], out_scales f32[M,3],
//          opacities f32[M], sh f32[M,3]
// One thread per anchor; grid = ceil(n / blockDim.x). Dynamic shared memory: W floats when
// use_shared is 1 (the weights are copied there by the block), else 0 (read from global memory).
#include "common.cuh"

// Every thread of the block takes part (the barrier), so this comes before any early return.
__device__ const float* gs_stage_weights(const float* __restrict__ weights, int n_weights, int use_shared) {
    GS_DYNAMIC_SHARED(float, s_weights);
    if (!use_shared) return weights;
    for (int i = threadIdx.x; i < n_weights; i += blockDim.x) s_weights[i] = weights[i];
    __syncthreads();
    return s_weights;
}

extern "C" __global__ void derive_count_kernel(const GsDeriveParams p) {
    const float* w = gs_stage_weights(p.weights, p.n_weights, p.use_shared);
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= p.n) return;
    float x[GS_MLP_MAX_WIDTH], a[GS_MLP_MAX_WIDTH], b[GS_MLP_MAX_WIDTH];
    const long long id = p.ids[i];
    p.counts[i] = gs_derive_opacity(p.anchors + 3 * id, p.features + (long long)p.F * id, p.F, p.levels[id],
                                    p.viewpoint, p.add_level, p.layers, p.mlps, w, p.k, x, a, b,
                                    p.opac + (long long)p.k * i);
}

extern "C" __global__ void derive_emit_kernel(const GsDeriveParams p) {
    const float* w = gs_stage_weights(p.weights, p.n_weights, p.use_shared);
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= p.n || p.counts[i] == 0) return;
    float x[GS_MLP_MAX_WIDTH], a[GS_MLP_MAX_WIDTH], b[GS_MLP_MAX_WIDTH];
    const long long id = p.ids[i];
    gs_derive_emit(p.anchors + 3 * id, p.offsets + 3LL * p.k * id, p.features + (long long)p.F * id,
                   p.scales + 6 * id, p.F, p.levels[id], p.viewpoint, p.add_level, p.layers, p.mlps, w, p.k,
                   p.opac + (long long)p.k * i, p.starts[i], x, a, b, p.means, p.quats, p.out_scales, p.opacities,
                   p.sh);
}
