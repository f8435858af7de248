// Foveation: the composite of the fovea's exact pixels over the upsampled periphery
// (gscache/stages/foveate.py's composite is the reference; the math is gs_fovea_composite of
// common.cuh).
//
// Contract (contiguous, row-major; E views of H x W, the periphery h x w):
//   GsFoveaCompositeParams: rgb f32[E,H,W,3], alpha, depth, median f32[E,H,W]   the fovea pass, in place
//                           p_rgb f32[E,h,w,3], p_alpha, p_depth, p_median f32[E,h,w]   the periphery
//                           rects i32[E,4]                                     each eye's exact rectangle
//   (both median pointers null, or both set).
// Launch: 1-D, one thread per output pixel.
#include "common.cuh"

extern "C" __global__ void fovea_composite_kernel(const GsFoveaCompositeParams p) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)p.E * p.height * p.width) return;
    gs_fovea_composite(p, i);
}
