// The SIMT emulation runtime (the model is described in simt.hpp): a launch runs its blocks one
// at a time, with barriers that check divergence, launch-limit checks and a per-block dynamic
// shared memory. Two ways to run the threads of a block:
//   * FREE: one host thread (pthread) per CUDA thread, all running at once; a barrier is a
//     mutex and condition variable, so ThreadSanitizer sees the races between barriers.
//   * FORWARD / REVERSE / RANDOM: one fiber (ucontext) per CUDA thread on the launching thread;
//     the scheduler resumes them one at a time in the schedule's order, each until its next
//     barrier or its end. Deterministic, and 15-25x faster than waking host threads (the
//     cuda-sim stages of plant.splat at 256x256: rasterize 19 s -> 1.3 s, shade 2.0 s -> 0.08 s,
//     on this project's 2-core Intel Xeon CI machine). The fibers are annotated for AddressSanitizer and ThreadSanitizer.
#include "simt.hpp"

#include <pthread.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <vector>

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace gs_simt {
namespace {

// Hardware limits of sm_80/sm_90 that a launch must respect (CUDA programming guide, table of
// technical specifications per compute capability).
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr unsigned kMaxBlock[3] = {1024, 1024, 64};
constexpr unsigned long long kMaxGrid[3] = {2147483647ULL, 65535ULL, 65535ULL};
constexpr long long kMaxSharedOptIn = 227 * 1024;  // sm_90; a kernel may opt in up to this
constexpr size_t kGuardBytes = 256;
constexpr unsigned char kGuardByte = 0xA5;
constexpr size_t kStackBytes = 1 << 20;  // per emulated host thread (kernels keep MLP scratch on the stack)
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr size_t kFiberStackBytes = 512 << 10;  // instrumented frames are larger
#else
constexpr size_t kFiberStackBytes = 128 << 10;
#endif

std::mutex g_error_mutex;
std::string g_error;

void set_error(const std::string& msg) {
    std::lock_guard<std::mutex> lk(g_error_mutex);
    g_error = msg;
}

struct Abort {};  // unwinds a thread out of a barrier once its launch has failed

enum State { RUNNING, WAITING, EXITED };

}  // namespace
}  // namespace gs_simt

// Fiber annotations: without them the sanitizers take a switch of stacks for a wild access.
#if defined(__SANITIZE_ADDRESS__)
extern "C" void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, size_t size);
extern "C" void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old, size_t* size_old);
#endif
#if defined(__SANITIZE_THREAD__)
extern "C" void* __tsan_get_current_fiber(void);
extern "C" void* __tsan_create_fiber(unsigned flags);
extern "C" void __tsan_destroy_fiber(void* fiber);
extern "C" void __tsan_switch_to_fiber(void* fiber, unsigned flags);
#endif

namespace gs_simt {
namespace {

// One emulated thread of the serial schedules.
struct Fiber {
    ucontext_t ctx;
    void* stack = nullptr;  // kFiberStackBytes, above a guard page
#if defined(__SANITIZE_THREAD__)
    void* tsan = nullptr;
#endif
};

std::string coords(uint3 v) {
    return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

class Launch {
   public:
    Launch(const LaunchConfig& cfg, void (*body)(const void*), const void* params)
        : cfg_(cfg), body_(body), params_(params) {
        n_ = cfg.block[0] * cfg.block[1] * cfg.block[2];
        n_blocks_ = (unsigned long long)cfg.grid[0] * cfg.grid[1] * cfg.grid[2];
        state_.assign(n_, RUNNING);
        site_file_.assign(n_, nullptr);
        site_line_.assign(n_, 0);
        rng_.seed(cfg.seed);
        block_order_.resize(n_blocks_);
        std::iota(block_order_.begin(), block_order_.end(), 0ULL);
        if (serial()) std::shuffle(block_order_.begin(), block_order_.end(), rng_);
        order_.resize(n_);
    }

    int run() { return serial() ? run_fibers() : run_threads(); }
    void worker(int rank);
    void fiber_main();
    bool stuck() const { return stuck_; }
    int barrier(int rank, const char* file, int line, int predicate);
    void* shared() const { return shared_; }

   private:
    bool serial() const { return cfg_.schedule != FREE; }
    size_t guard_bytes() const { return kGuardBytes + (size_t)cfg_.shared_bytes; }
    int run_threads();
    int run_fibers();
    void switch_to(Fiber& to, ucontext_t* from, const void* stack, size_t size);
    void back_to_scheduler();
    uint3 thread_of(int rank) const {
        return {rank % cfg_.block[0], (rank / cfg_.block[0]) % cfg_.block[1], rank / (cfg_.block[0] * cfg_.block[1])};
    }
    uint3 block_of(unsigned long long b) const {
        const unsigned long long linear = block_order_[b];
        return {(unsigned)(linear % cfg_.grid[0]), (unsigned)((linear / cfg_.grid[0]) % cfg_.grid[1]),
                (unsigned)(linear / ((unsigned long long)cfg_.grid[0] * cfg_.grid[1]))};
    }
    std::string where(int rank) const {
        return "block " + coords(block_of(current_)) + " thread " + coords(thread_of(rank));
    }
    void fail(const std::string& msg);  // with mu_ held
    void begin_block();                 // with mu_ held
    void end_shared();                  // checks the guard bytes, frees the block's shared memory
    void end_block();                   // with mu_ held
    void complete_phase();              // with mu_ held
    void new_order();                   // serial schedules
    void exit_thread(int rank);         // with mu_ held
    template <class Pred>
    void wait(std::unique_lock<std::mutex>& lk, int rank, Pred ready, const char* what);

    const LaunchConfig cfg_;
    void (*body_)(const void*);
    const void* params_;
    unsigned n_ = 0;
    unsigned long long n_blocks_ = 0;

    std::mutex mu_;
    std::condition_variable all_cv_, done_cv_;
    std::vector<State> state_;
    std::vector<const char*> site_file_;
    std::vector<int> site_line_;
    std::vector<int> order_;  // serial schedules: the order of this barrier interval
    std::vector<Fiber> fibers_;
    ucontext_t scheduler_;
    int running_ = -1;  // the fiber being run
#if defined(__SANITIZE_ADDRESS__)
    void* fake_stack_ = nullptr;
    const void* scheduler_stack_ = nullptr;
    size_t scheduler_stack_size_ = 0;
#endif
#if defined(__SANITIZE_THREAD__)
    void* scheduler_tsan_ = nullptr;
#endif
    std::mt19937_64 rng_;
    std::vector<unsigned long long> block_order_;
    unsigned long long current_ = 0;  // index into block_order_ of the running block
    unsigned long long phase_ = 0;    // completed barrier intervals (all blocks)
    unsigned arrived_ = 0, exited_ = 0, finished_ = 0;
    int count_ = 0, last_count_ = 0;
    bool failed_ = false, stuck_ = false;
    unsigned char* shared_ = nullptr;
};

thread_local Launch* t_launch = nullptr;
thread_local int t_rank = 0;

void Launch::fail(const std::string& msg) {
    if (failed_) return;
    failed_ = true;
    set_error(msg);
    all_cv_.notify_all();
    done_cv_.notify_all();
}

template <class Pred>
void Launch::wait(std::unique_lock<std::mutex>& lk, int rank, Pred ready, const char* what) {
    const auto limit = std::chrono::duration<double>(cfg_.timeout_s);
    while (!failed_ && !ready()) {
        if (all_cv_.wait_for(lk, limit) == std::cv_status::timeout && !failed_ && !ready()) {
            int running = 0;
            for (unsigned r = 0; r < n_; ++r) running += state_[r] == RUNNING;
            fail("deadlock: " + where(rank) + " waited more than " + std::to_string(cfg_.timeout_s) + " s " + what +
                 " (" + std::to_string(arrived_) + " threads at a barrier, " + std::to_string(running) +
                 " still running, " + std::to_string(exited_) + " exited)");
        }
    }
    if (failed_) throw Abort{};
}

void Launch::new_order() {
    for (unsigned r = 0; r < n_; ++r) order_[r] = (int)r;
    if (cfg_.schedule == REVERSE) std::reverse(order_.begin(), order_.end());
    if (cfg_.schedule == RANDOM) std::shuffle(order_.begin(), order_.end(), rng_);
}

void Launch::begin_block() {
    std::fill(state_.begin(), state_.end(), RUNNING);
    arrived_ = exited_ = 0;
    count_ = 0;
    const size_t bytes = (size_t)cfg_.shared_bytes;
    // As large as the buffer itself: an undersized launch overruns by whole arrays, not bytes.
    const size_t guard = cfg_.guard ? guard_bytes() : 0;
    // Exactly the launch's size (plus the guard): AddressSanitizer then sees any access beyond it.
    shared_ = static_cast<unsigned char*>(std::malloc(bytes + guard ? bytes + guard : 1));
    std::memset(shared_, 0xFF, bytes);
    std::memset(shared_ + bytes, kGuardByte, guard);
}

void Launch::end_shared() {
    const size_t bytes = (size_t)cfg_.shared_bytes;
    if (!failed_ && cfg_.guard)
        for (size_t i = 0; i < guard_bytes(); ++i)
            if (shared_[bytes + i] != kGuardByte) {
                fail("block " + coords(block_of(current_)) + " wrote past the end of its " + std::to_string(bytes) +
                     " bytes of dynamic shared memory (byte " + std::to_string(bytes + i) + ")");
                break;
            }
    std::free(shared_);
    shared_ = nullptr;
}

void Launch::end_block() {
    end_shared();
    if (failed_) return;
    if (++current_ < n_blocks_ && !serial()) {
        begin_block();
        all_cv_.notify_all();
    }
}

void Launch::complete_phase() {
    if (exited_ > 0) {
        for (unsigned r = 0; r < n_; ++r)
            if (state_[r] == WAITING) {
                fail("barrier divergence: " + std::to_string(exited_) + " threads of block " +
                     coords(block_of(current_)) + " exited while " + std::to_string(arrived_) + " wait at " +
                     site_file_[r] + ":" + std::to_string(site_line_[r]) + " (e.g. " + where(r) + ")");
                return;
            }
    }
    int first = -1;
    for (unsigned r = 0; r < n_; ++r) {
        if (state_[r] != WAITING) continue;
        if (first < 0) {
            first = (int)r;
        } else if (site_line_[r] != site_line_[first] || std::strcmp(site_file_[r], site_file_[first]) != 0) {
            fail("barrier divergence: " + where(first) + " waits at " + site_file_[first] + ":" +
                 std::to_string(site_line_[first]) + " but " + where(r) + " at " + site_file_[r] + ":" +
                 std::to_string(site_line_[r]));
            return;
        }
    }
    last_count_ = count_;
    count_ = 0;
    arrived_ = 0;
    for (unsigned r = 0; r < n_; ++r) state_[r] = RUNNING;
    ++phase_;
    if (!serial()) all_cv_.notify_all();
}

int Launch::barrier(int rank, const char* file, int line, int predicate) {
    if (serial()) {  // one fiber at a time: no lock; the scheduler completes the phase
        state_[rank] = WAITING;
        site_file_[rank] = file;
        site_line_[rank] = line;
        ++arrived_;
        count_ += predicate;
        back_to_scheduler();
        return last_count_;
    }
    std::unique_lock<std::mutex> lk(mu_);
    if (failed_) throw Abort{};
    state_[rank] = WAITING;
    site_file_[rank] = file;
    site_line_[rank] = line;
    ++arrived_;
    count_ += predicate;
    const unsigned long long my_phase = phase_;
    if (arrived_ + exited_ == n_) complete_phase();
    wait(lk, rank, [&] { return phase_ != my_phase; }, "at a barrier");
    return last_count_;
}

void Launch::exit_thread(int rank) {
    state_[rank] = EXITED;
    ++exited_;
    if (exited_ == n_) {
        end_block();
    } else if (arrived_ > 0 && arrived_ + exited_ == n_) {
        complete_phase();  // reports the divergence: the others wait at a barrier this thread never reaches
    }
}

// ---- Serial schedules: fibers -----------------------------------------------------------------

void Launch::switch_to(Fiber& to, ucontext_t* from, const void* stack, size_t size) {
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_start_switch_fiber(&fake_stack_, stack, size);
#else
    (void)stack;
    (void)size;
#endif
#if defined(__SANITIZE_THREAD__)
    __tsan_switch_to_fiber(to.tsan, 0);
#endif
    swapcontext(from, &to.ctx);
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(fake_stack_, nullptr, nullptr);
#endif
}

void Launch::back_to_scheduler() {
#if defined(__SANITIZE_ADDRESS__)
    void* fake = nullptr;
    // A fiber that has exited never comes back: no fake stack to keep.
    __sanitizer_start_switch_fiber(state_[running_] == EXITED ? nullptr : &fake, scheduler_stack_,
                                   scheduler_stack_size_);
#endif
#if defined(__SANITIZE_THREAD__)
    __tsan_switch_to_fiber(scheduler_tsan_, 0);
#endif
    swapcontext(&fibers_[running_].ctx, &scheduler_);
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(fake, &scheduler_stack_, &scheduler_stack_size_);
#endif
}

void Launch::fiber_main() {
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(nullptr, &scheduler_stack_, &scheduler_stack_size_);
#endif
    const int rank = running_;
    try {
        body_(params_);
    } catch (...) {
        fail(where(rank) + " threw a C++ exception");
    }
    state_[rank] = EXITED;
    ++exited_;
    back_to_scheduler();  // never resumed
}

void fiber_entry(unsigned int hi, unsigned int lo) {
    auto* self = reinterpret_cast<Launch*>(((uintptr_t)hi << 32) | (uintptr_t)lo);
    self->fiber_main();
}

int Launch::run_fibers() {
    if (n_blocks_ == 0) return 0;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t span = kFiberStackBytes + page;  // a guard page below each stack
    void* stacks = mmap(nullptr, span * n_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (stacks == MAP_FAILED) {
        set_error("could not map the fiber stacks of one block");
        return 1;
    }
    fibers_.resize(n_);
    for (unsigned r = 0; r < n_; ++r) {
        char* base = static_cast<char*>(stacks) + r * span;
        mprotect(base, page, PROT_NONE);  // a stack overflow faults instead of corrupting a neighbour
        fibers_[r].stack = base + page;
#if defined(__SANITIZE_THREAD__)
        fibers_[r].tsan = __tsan_create_fiber(0);
#endif
    }
#if defined(__SANITIZE_THREAD__)
    scheduler_tsan_ = __tsan_get_current_fiber();
#endif
    t_launch = this;
    blockDim = {cfg_.block[0], cfg_.block[1], cfg_.block[2]};
    gridDim = {cfg_.grid[0], cfg_.grid[1], cfg_.grid[2]};
    const uintptr_t self = reinterpret_cast<uintptr_t>(this);
    for (current_ = 0; current_ < n_blocks_ && !failed_; ++current_) {
        begin_block();
        blockIdx = block_of(current_);
        for (unsigned r = 0; r < n_; ++r) {
            Fiber& f = fibers_[r];
            getcontext(&f.ctx);
            f.ctx.uc_stack.ss_sp = f.stack;
            f.ctx.uc_stack.ss_size = kFiberStackBytes;
            f.ctx.uc_link = nullptr;  // fibers never return: they switch back and are dropped
            makecontext(&f.ctx, reinterpret_cast<void (*)()>(fiber_entry), 2, (unsigned)(self >> 32),
                        (unsigned)(self & 0xffffffffu));
        }
        while (!failed_) {
            new_order();
            for (unsigned i = 0; i < n_ && !failed_; ++i) {
                const int r = order_[i];
                if (state_[r] != RUNNING) continue;
                running_ = r;
                t_rank = r;
                threadIdx = thread_of(r);
                switch_to(fibers_[r], &scheduler_, fibers_[r].stack, kFiberStackBytes);
            }
            if (failed_ || exited_ == n_) break;
            complete_phase();  // every thread waits or has exited: release the barrier, or report divergence
        }
        end_shared();
    }
#if defined(__SANITIZE_THREAD__)
    for (auto& f : fibers_) __tsan_destroy_fiber(f.tsan);
#endif
    munmap(stacks, span * n_);
    t_launch = nullptr;
    return failed_ ? 1 : 0;
}

void Launch::worker(int rank) {
    t_launch = this;
    t_rank = rank;
    threadIdx = thread_of(rank);
    blockDim = {cfg_.block[0], cfg_.block[1], cfg_.block[2]};
    gridDim = {cfg_.grid[0], cfg_.grid[1], cfg_.grid[2]};
    std::unique_lock<std::mutex> lk(mu_);
    for (unsigned long long b = 0; b < n_blocks_; ++b) {
        try {
            wait(lk, rank, [&] { return current_ == b; }, "for its block to start");
        } catch (Abort&) {
            break;
        }
        blockIdx = block_of(b);
        lk.unlock();
        try {
            body_(params_);
        } catch (Abort&) {
        } catch (...) {
            lk.lock();
            fail(where(rank) + " threw a C++ exception");
            lk.unlock();
        }
        lk.lock();
        if (failed_) break;
        exit_thread(rank);
    }
    ++finished_;
    done_cv_.notify_all();
    t_launch = nullptr;
}

struct StartArgs {
    Launch* launch;
    int rank;
};

void* start_thread(void* arg) {
    const StartArgs a = *static_cast<StartArgs*>(arg);
    delete static_cast<StartArgs*>(arg);
    a.launch->worker(a.rank);
    return nullptr;
}

int Launch::run_threads() {
    if (n_blocks_ == 0) return 0;
    {
        std::lock_guard<std::mutex> lk(mu_);
        begin_block();
    }
    std::vector<pthread_t> threads(n_);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, kStackBytes);
    unsigned started = 0;
    for (; started < n_; ++started)
        if (pthread_create(&threads[started], &attr, start_thread, new StartArgs{this, (int)started}) != 0) break;
    pthread_attr_destroy(&attr);
    std::unique_lock<std::mutex> lk(mu_);
    if (started < n_) fail("could not start " + std::to_string(n_) + " host threads for one block");
    // A thread that loops forever outside a barrier never finishes: the launch fails instead of
    // hanging, and that thread is left behind (the process should then be restarted).
    const auto limit = std::chrono::duration<double>(cfg_.timeout_s);
    bool& stuck = stuck_;
    while (finished_ < started) {
        if (done_cv_.wait_for(lk, limit) == std::cv_status::timeout && finished_ < started) {
            if (!failed_) {
                fail("deadlock: the launch made no progress for " + std::to_string(cfg_.timeout_s) + " s (" +
                     std::to_string(started - finished_) + " threads still running)");
                continue;  // the others leave their barriers now
            }
            stuck = true;
            break;
        }
    }
    const bool ok = !failed_;
    lk.unlock();
    for (unsigned i = 0; i < started; ++i) {
        if (stuck)
            pthread_detach(threads[i]);
        else
            pthread_join(threads[i], nullptr);
    }
    if (!stuck) std::free(shared_);
    return ok ? 0 : 1;
}

}  // namespace

int launch(const LaunchConfig& cfg, void (*body)(const void*), const void* params) {
    set_error("");
    unsigned long long threads = 1;
    for (int d = 0; d < 3; ++d) {
        if (cfg.block[d] < 1 || cfg.block[d] > kMaxBlock[d]) {
            set_error("launch: blockDim." + std::string(1, "xyz"[d]) + " = " + std::to_string(cfg.block[d]) +
                      " is outside [1, " + std::to_string(kMaxBlock[d]) + "]");
            return 1;
        }
        if (cfg.grid[d] > kMaxGrid[d]) {
            set_error("launch: gridDim." + std::string(1, "xyz"[d]) + " = " + std::to_string(cfg.grid[d]) +
                      " exceeds " + std::to_string(kMaxGrid[d]));
            return 1;
        }
        threads *= cfg.block[d];
    }
    if (threads > kMaxThreadsPerBlock) {
        set_error("launch: " + std::to_string(threads) + " threads per block exceed " +
                  std::to_string(kMaxThreadsPerBlock));
        return 1;
    }
    if (cfg.shared_bytes < 0 || cfg.shared_bytes > cfg.shared_limit || cfg.shared_limit > kMaxSharedOptIn) {
        set_error("launch: " + std::to_string(cfg.shared_bytes) + " bytes of dynamic shared memory exceed the " +
                  std::to_string(std::min(cfg.shared_limit, kMaxSharedOptIn)) +
                  " the kernel may use (48 KiB unless it opts in, at most 227 KiB)");
        return 1;
    }
    auto* run = new Launch(cfg, body, params);
    const int rc = run->run();
    if (!run->stuck()) delete run;  // a stuck thread still uses it
    return rc;
}

int barrier(const char* file, int line, int predicate) {
    if (t_launch == nullptr) std::abort();  // a barrier outside a launch
    return t_launch->barrier(t_rank, file, line, predicate);
}

void* dynamic_shared() { return t_launch->shared(); }

}  // namespace gs_simt

extern "C" const char* gs_simt_error() { return gs_simt::g_error.c_str(); }
