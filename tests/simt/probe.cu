// Probe kernels for the SIMT emulator's own tests (tests/simt/test_emulator.py): each exercises
// one rule of the execution model. Not part of the product.
#include <unistd.h>

#include "common.cuh"

struct ProbeParams {
    int* out;
    int* counter;
    int n;
    int mode;
};

// __syncthreads_count over the threads with threadIdx.x < n; every thread writes the count.
extern "C" __global__ void probe_count(const ProbeParams p) {
    const int c = __syncthreads_count(threadIdx.x < (unsigned)p.n);
    p.out[blockIdx.x * blockDim.x + threadIdx.x] = c;
}

// mode 0: thread 3 returns before the barrier; mode 1: odd threads wait at another barrier.
extern "C" __global__ void probe_divergent(const ProbeParams p) {
    if (p.mode == 0) {
        if (threadIdx.x == 3) return;
        __syncthreads();
    } else {
        if (threadIdx.x % 2)
            __syncthreads();
        else
            __syncthreads();
    }
    p.out[threadIdx.x] = 1;
}

// Dynamic shared memory: mode 0 reads it before any write; mode 1 writes one int past n ints;
// mode 2 exchanges through it with a barrier, mode 3 without (the missing-barrier bug).
extern "C" __global__ void probe_shared(const ProbeParams p) {
    GS_DYNAMIC_SHARED(int, s);
    const int t = threadIdx.x;
    if (p.mode == 0) {
        p.out[t] = s[t];
    } else if (p.mode == 1) {
        s[t + 1] = t;
        p.out[t] = 0;
    } else {
        s[t] = t + 100;
        if (p.mode == 2) __syncthreads();
        p.out[t] = s[(t + 1) % blockDim.x];
    }
}

// The order in which a serial schedule runs the threads (race-free only there): before and
// after a barrier; blocks record the order they ran in.
extern "C" __global__ void probe_order(const ProbeParams p) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    p.out[2 * t] = (*p.counter)++;
    __syncthreads();
    p.out[2 * t + 1] = (*p.counter)++;
}

// Thread 0 sleeps p.n milliseconds before the barrier: longer than the timeout is a deadlock.
extern "C" __global__ void probe_sleep(const ProbeParams p) {
    if (threadIdx.x == 0) usleep(1000 * p.n);
    __syncthreads();
    p.out[threadIdx.x] = 1;
}
