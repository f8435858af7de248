// SIMT emulation of the CUDA kernels on the host: every .cu file of cuda/kernels/ is compiled by
// the host C++ compiler with this header force-included (-include simt/simt.hpp -D__CUDACC__
// -D__CUDA_ARCH__=800 -DGS_SIMT), so common.cuh takes its device branches and the kernels run
// unmodified, one host thread per CUDA thread (simt.cpp is the runtime; gscache/backends/simt.py
// builds and drives it).
//
// Model:
//   * threadIdx / blockIdx / blockDim / gridDim are thread-local: each host thread is one CUDA
//     thread of the block being run; blocks run one at a time, each with its own dynamic shared
//     memory (a fresh malloc of exactly the launch's size, filled with 0xFF bytes so that a read
//     before any write gives NaN, or -1 for integers).
//   * __syncthreads() and __syncthreads_count() go through the runtime's barrier, which knows the
//     call site of every waiting thread: threads waiting at different barriers, or a thread that
//     exits while others wait, is barrier divergence and fails the launch; so does a barrier that
//     does not complete within the launch's timeout (a deadlock).
//   * Warp-level intrinsics (shuffles, votes) are not emulated: the kernels use none, and one
//     that does fails to compile here rather than run with wrong semantics. Of the atomics, the
//     64-bit atomicMin on global memory is (the reprojection's depth splat): a host atomic
//     compare-and-swap loop, right in every schedule (the free one included) and seen as atomic
//     by ThreadSanitizer; any other atomic fails to compile.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#define __host__
#define __device__
#define __global__
#define __forceinline__ inline __attribute__((always_inline))
// Only dynamic shared memory is emulated (GS_DYNAMIC_SHARED in common.cuh); a static __shared__
// array would silently become per-thread here, so it is refused at compile time.
#define __shared__ static_assert(false, "static __shared__ arrays are not emulated: use GS_DYNAMIC_SHARED");

struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
};

extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;

namespace gs_simt {
// One launch (mirrored by gscache/backends/simt.py, SimLaunch).
struct LaunchConfig {
    unsigned int grid[3];
    unsigned int block[3];
    long long shared_bytes;  // dynamic shared memory of each block
    long long shared_limit;  // what the kernel may ask for: 48 KiB unless it opted in, as on the GPU
    int schedule;            // a Schedule
    int guard;               // 1: guard bytes after each block's shared memory, checked when it ends
    unsigned long long seed; // block and thread order of the random schedule
    double timeout_s;        // a barrier (or a block) taking longer is a deadlock
};

enum Schedule {
    FREE = 0,     // every thread of a block runs at once (ThreadSanitizer sees their races)
    FORWARD = 1,  // serial: one thread at a time between barriers, in threadIdx order
    REVERSE = 2,  // serial, in reverse threadIdx order
    RANDOM = 3,   // serial, in an order drawn from the seed for every barrier interval
};

// Runs body(params) as every thread of the grid; 0 on success, else an error (gs_simt_error()).
int launch(const LaunchConfig& cfg, void (*body)(const void*), const void* params);

// The kernel's side.
int barrier(const char* file, int line, int predicate);  // returns how many threads had predicate != 0
void* dynamic_shared();
}  // namespace gs_simt

#define __syncthreads() ((void)gs_simt::barrier(__FILE__, __LINE__, 0))
#define __syncthreads_count(pred) gs_simt::barrier(__FILE__, __LINE__, (pred) ? 1 : 0)

// Device intrinsics and math the kernels use, with the host's IEEE float semantics.
inline unsigned int __float_as_uint(float f) {
    unsigned int u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}
inline long long __double_as_longlong(double d) {
    long long u;
    std::memcpy(&u, &d, sizeof u);
    return u;
}
inline double __longlong_as_double(long long u) {
    double d;
    std::memcpy(&d, &u, sizeof d);
    return d;
}
inline unsigned long long atomicMin(unsigned long long* address, unsigned long long val) {
    unsigned long long old = __atomic_load_n(address, __ATOMIC_RELAXED);
    while (val < old && !__atomic_compare_exchange_n(address, &old, val, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    return old;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
// expf, sqrtf, tanhf, floorf, ceilf, fmaxf: <cmath>'s global C functions.
