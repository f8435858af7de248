// gscache test runtime: a small, deterministic OpenXR 1.0 runtime for CI.
//
// Khronos' loader finds it through a manifest named by XR_RUNTIME_JSON and talks to it through
// the one exported symbol, xrNegotiateLoaderRuntimeInterface. It emulates one head-mounted
// display with a stereo view configuration, plays back scripted eye poses, enforces the call
// order rules the specification puts on sessions, frames and swapchains, and records what the
// application did (a call trace, every submitted projection layer and the pixels it showed), so
// that tests can check an application end to end without VR hardware.
//
// Build: g++ -std=c++17 -O1 -shared -fPIC -fvisibility=hidden -Wl,--no-undefined -Wl,--version-script=MAP
//            -o libgscache_test_runtime.so gscache_test_runtime.cpp -ldl
// (tests/xr/runtime.py does this; MAP is a version script exporting xrNegotiateLoaderRuntimeInterface
// only, which also hides the weak libstdc++ template instances its headers mark visible).
// --no-undefined proves that nothing links against libGL or
// libX11: OpenGL is called only through pointers looked up at run time in the application's
// already loaded libGL, because the runtime must draw with the application's context and must
// not drag a second GL library into the process.
//
// Environment, read at xrCreateInstance:
//   GSCACHE_XR_SCRIPT   script file (see parse_script below); without it a fixed default.
//   GSCACHE_XR_RECORD   directory for trace.txt, frame_K.txt and frame_K_eye_E.rgba.
//   GSCACHE_XR_FORMATS  comma-separated hex GL internal formats offered for swapchains.
//   GSCACHE_XR_LATE_ERROR_DEG  the first xrLocateViews of a display time returns the views
//                       turned by this many degrees about the origin's up axis (a stale, early
//                       prediction); later calls for that time return the scripted views (a
//                       real runtime's prediction improves as the display time nears): what
//                       late reprojection corrects.

#define XR_NO_PROTOTYPES  // every entry point is ours, reached through xrGetInstanceProcAddr
#define XR_USE_PLATFORM_XLIB
#define XR_USE_GRAPHICS_API_OPENGL

#include <X11/Xlib.h>
#include <GL/glx.h>  // types and enum values only; no GL or GLX symbol is linked
#include <dlfcn.h>
#include <openxr/openxr.h>
#include <openxr/openxr_platform.h>
#include <openxr/openxr_reflection.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

// ---------------------------------------------------------------------------------------------
// Loader negotiation. Debian's 1.0.20 headers lack openxr_loader_negotiation.h, so the structures
// are declared here from the loader specification ("Runtime Interface Negotiation"); their layout
// is fixed by that document (interface version 1).

enum XrLoaderInterfaceStructs {
    XR_LOADER_INTERFACE_STRUCT_UNINTIALIZED = 0,
    XR_LOADER_INTERFACE_STRUCT_LOADER_INFO = 1,
    XR_LOADER_INTERFACE_STRUCT_API_LAYER_REQUEST = 2,
    XR_LOADER_INTERFACE_STRUCT_RUNTIME_REQUEST = 3,
    XR_LOADER_INTERFACE_STRUCT_API_LAYER_CREATE_INFO = 4,
    XR_LOADER_INTERFACE_STRUCT_API_LAYER_NEXT_INFO = 5,
    XR_LOADER_INTERFACE_STRUCTS_MAX_ENUM = 0x7FFFFFFF
};

constexpr uint32_t kLoaderInfoStructVersion = 1;
constexpr uint32_t kRuntimeInfoStructVersion = 1;
constexpr uint32_t kRuntimeInterfaceVersion = 1;

struct XrNegotiateLoaderInfo {
    XrLoaderInterfaceStructs structType;  // XR_LOADER_INTERFACE_STRUCT_LOADER_INFO
    uint32_t structVersion;               // kLoaderInfoStructVersion
    size_t structSize;                    // sizeof(XrNegotiateLoaderInfo)
    uint32_t minInterfaceVersion;
    uint32_t maxInterfaceVersion;
    XrVersion minApiVersion;
    XrVersion maxApiVersion;
};

struct XrNegotiateRuntimeRequest {
    XrLoaderInterfaceStructs structType;  // XR_LOADER_INTERFACE_STRUCT_RUNTIME_REQUEST
    uint32_t structVersion;               // kRuntimeInfoStructVersion
    size_t structSize;                    // sizeof(XrNegotiateRuntimeRequest)
    uint32_t runtimeInterfaceVersion;     // out
    XrVersion runtimeApiVersion;          // out
    PFN_xrGetInstanceProcAddr getInstanceProcAddr;  // out
};

namespace {

// ---------------------------------------------------------------------------------------------
// Constants of the emulated system.

constexpr XrSystemId kSystemId = 1;
constexpr uint32_t kMaxImageSize = 4096;
constexpr uint32_t kImagesPerSwapchain = 3;
constexpr uint32_t kMaxLayers = XR_MIN_COMPOSITION_LAYERS_SUPPORTED;
constexpr XrDuration kFramePeriod = 11111111;  // 90 Hz, in nanoseconds
constexpr const char* kRuntimeName = "gscache test runtime";
constexpr XrVersion kRuntimeVersion = XR_MAKE_VERSION(0, 1, 0);

// GL enum values that GL/gl.h of old Mesa may not define; the numbers are the registry's.
constexpr GLenum kGL_SRGB8 = 0x8C41, kGL_SRGB8_ALPHA8 = 0x8C43, kGL_RGBA8 = 0x8058, kGL_RGB8 = 0x8051,
                 kGL_RGBA16F = 0x881A, kGL_RGB16F = 0x881B, kGL_RGBA32F = 0x8814, kGL_RGB10_A2 = 0x8059,
                 kGL_R11F_G11F_B10F = 0x8C3A, kGL_DEPTH_COMPONENT16 = 0x81A5, kGL_DEPTH_COMPONENT24 = 0x81A6,
                 kGL_DEPTH_COMPONENT32F = 0x8CAC, kGL_DEPTH24_STENCIL8 = 0x88F0, kGL_DEPTH32F_STENCIL8 = 0x8CAD,
                 kGL_HALF_FLOAT = 0x140B, kGL_DEPTH_STENCIL = 0x84F9, kGL_UNSIGNED_INT_24_8 = 0x84FA,
                 kGL_FLOAT_32_UNSIGNED_INT_24_8_REV = 0x8DAD, kGL_UNSIGNED_INT_2_10_10_10_REV = 0x8368,
                 kGL_UNSIGNED_INT_10F_11F_11F_REV = 0x8C3B, kGL_PIXEL_PACK_BUFFER = 0x88EB,
                 kGL_PIXEL_UNPACK_BUFFER = 0x88EC, kGL_PIXEL_PACK_BUFFER_BINDING = 0x88ED,
                 kGL_PIXEL_UNPACK_BUFFER_BINDING = 0x88EF, kGL_TEXTURE_MAX_LEVEL = 0x813D;

// How a swapchain format is allocated with glTexImage2D (which needs a compatible format/type
// pair even without data) and whether it is a depth format.
struct GlFormat {
    GLenum internal, format, type;
    bool depth;
};
const GlFormat kKnownFormats[] = {
    {kGL_SRGB8_ALPHA8, GL_RGBA, GL_UNSIGNED_BYTE, false},
    {kGL_RGBA8, GL_RGBA, GL_UNSIGNED_BYTE, false},
    {kGL_SRGB8, GL_RGB, GL_UNSIGNED_BYTE, false},
    {kGL_RGB8, GL_RGB, GL_UNSIGNED_BYTE, false},
    {kGL_RGBA16F, GL_RGBA, kGL_HALF_FLOAT, false},
    {kGL_RGB16F, GL_RGB, kGL_HALF_FLOAT, false},
    {kGL_RGBA32F, GL_RGBA, GL_FLOAT, false},
    {kGL_RGB10_A2, GL_RGBA, kGL_UNSIGNED_INT_2_10_10_10_REV, false},
    {kGL_R11F_G11F_B10F, GL_RGB, kGL_UNSIGNED_INT_10F_11F_11F_REV, false},
    {kGL_DEPTH_COMPONENT16, GL_DEPTH_COMPONENT, GL_UNSIGNED_SHORT, true},
    {kGL_DEPTH_COMPONENT24, GL_DEPTH_COMPONENT, GL_UNSIGNED_INT, true},
    {kGL_DEPTH_COMPONENT32F, GL_DEPTH_COMPONENT, GL_FLOAT, true},
    {kGL_DEPTH24_STENCIL8, kGL_DEPTH_STENCIL, kGL_UNSIGNED_INT_24_8, true},
    {kGL_DEPTH32F_STENCIL8, kGL_DEPTH_STENCIL, kGL_FLOAT_32_UNSIGNED_INT_24_8_REV, true},
};
const GlFormat* find_format(int64_t internal) {
    for (const GlFormat& f : kKnownFormats)
        if (static_cast<int64_t>(f.internal) == internal) return &f;
    return nullptr;
}

// ---------------------------------------------------------------------------------------------
// OpenGL through run-time lookup. The application has libGL loaded and its context current on the
// thread that calls xrCreateSwapchain / xrEndFrame. dlsym(RTLD_DEFAULT) finds libGL when it was
// loaded globally; Python's ctypes and glfw load it RTLD_LOCAL, so the fallback asks the dynamic
// linker for the already loaded copies (RTLD_NOLOAD never loads a new library).

void* gl_symbol(const char* name) {
    if (void* p = dlsym(RTLD_DEFAULT, name)) return p;
    for (const char* lib : {"libGL.so.1", "libGL.so", "libOpenGL.so.0", "libGLX.so.0"}) {
        void* handle = dlopen(lib, RTLD_LAZY | RTLD_NOLOAD);
        if (handle == nullptr) continue;
        void* p = dlsym(handle, name);
        dlclose(handle);  // only drops the reference RTLD_NOLOAD added
        if (p) return p;
    }
    return nullptr;
}

struct Gl {
    void (*GenTextures)(GLsizei, GLuint*) = nullptr;
    void (*DeleteTextures)(GLsizei, const GLuint*) = nullptr;
    void (*BindTexture)(GLenum, GLuint) = nullptr;
    void (*TexImage2D)(GLenum, GLint, GLint, GLsizei, GLsizei, GLint, GLenum, GLenum, const void*) = nullptr;
    void (*TexParameteri)(GLenum, GLenum, GLint) = nullptr;
    void (*GetTexImage)(GLenum, GLint, GLenum, GLenum, void*) = nullptr;
    void (*GetIntegerv)(GLenum, GLint*) = nullptr;
    void (*PixelStorei)(GLenum, GLint) = nullptr;
    void (*BindBuffer)(GLenum, GLuint) = nullptr;
    GLenum (*GetError)() = nullptr;
    GLXContext (*GetCurrentContext)() = nullptr;
    int (*GetFBConfigAttrib)(Display*, GLXFBConfig, int, int*) = nullptr;

    bool load() {
        if (GenTextures) return true;
        GetCurrentContext = reinterpret_cast<decltype(GetCurrentContext)>(gl_symbol("glXGetCurrentContext"));
        GetFBConfigAttrib = reinterpret_cast<decltype(GetFBConfigAttrib)>(gl_symbol("glXGetFBConfigAttrib"));
        DeleteTextures = reinterpret_cast<decltype(DeleteTextures)>(gl_symbol("glDeleteTextures"));
        BindTexture = reinterpret_cast<decltype(BindTexture)>(gl_symbol("glBindTexture"));
        TexImage2D = reinterpret_cast<decltype(TexImage2D)>(gl_symbol("glTexImage2D"));
        TexParameteri = reinterpret_cast<decltype(TexParameteri)>(gl_symbol("glTexParameteri"));
        GetTexImage = reinterpret_cast<decltype(GetTexImage)>(gl_symbol("glGetTexImage"));
        GetIntegerv = reinterpret_cast<decltype(GetIntegerv)>(gl_symbol("glGetIntegerv"));
        PixelStorei = reinterpret_cast<decltype(PixelStorei)>(gl_symbol("glPixelStorei"));
        BindBuffer = reinterpret_cast<decltype(BindBuffer)>(gl_symbol("glBindBuffer"));
        GetError = reinterpret_cast<decltype(GetError)>(gl_symbol("glGetError"));
        auto gen = reinterpret_cast<decltype(GenTextures)>(gl_symbol("glGenTextures"));
        if (!(gen && DeleteTextures && BindTexture && TexImage2D && TexParameteri && GetTexImage && GetIntegerv &&
              PixelStorei && BindBuffer && GetError && GetCurrentContext))
            return false;
        GenTextures = gen;  // set last: it marks the table complete
        return true;
    }
    // GL may only be called where the application made a context current.
    bool usable() { return load() && GetCurrentContext() != nullptr; }
    // Errors the application left pending would be blamed on us; drain them first.
    void drain_errors() {
        for (int i = 0; i < 16 && GetError() != GL_NO_ERROR; ++i) {
        }
    }
};
Gl g_gl;

// Saves and restores the GL state the runtime touches, so that the application's bindings and
// pixel-store settings survive xrCreateSwapchain and xrEndFrame unchanged.
struct GlStateGuard {
    GLint texture = 0, pack_buffer = 0, unpack_buffer = 0, pack_alignment = 4, pack_row_length = 0,
          pack_skip_rows = 0, pack_skip_pixels = 0;
    GlStateGuard() {
        g_gl.GetIntegerv(GL_TEXTURE_BINDING_2D, &texture);
        g_gl.GetIntegerv(kGL_PIXEL_PACK_BUFFER_BINDING, &pack_buffer);
        g_gl.GetIntegerv(kGL_PIXEL_UNPACK_BUFFER_BINDING, &unpack_buffer);
        g_gl.GetIntegerv(GL_PACK_ALIGNMENT, &pack_alignment);
        g_gl.GetIntegerv(GL_PACK_ROW_LENGTH, &pack_row_length);
        g_gl.GetIntegerv(GL_PACK_SKIP_ROWS, &pack_skip_rows);
        g_gl.GetIntegerv(GL_PACK_SKIP_PIXELS, &pack_skip_pixels);
        // A bound pixel buffer would turn the NULL data of glTexImage2D and the destination of
        // glGetTexImage into buffer offsets.
        g_gl.BindBuffer(kGL_PIXEL_PACK_BUFFER, 0);
        g_gl.BindBuffer(kGL_PIXEL_UNPACK_BUFFER, 0);
        g_gl.PixelStorei(GL_PACK_ALIGNMENT, 1);
        g_gl.PixelStorei(GL_PACK_ROW_LENGTH, 0);
        g_gl.PixelStorei(GL_PACK_SKIP_ROWS, 0);
        g_gl.PixelStorei(GL_PACK_SKIP_PIXELS, 0);
    }
    ~GlStateGuard() {
        g_gl.PixelStorei(GL_PACK_ALIGNMENT, pack_alignment);
        g_gl.PixelStorei(GL_PACK_ROW_LENGTH, pack_row_length);
        g_gl.PixelStorei(GL_PACK_SKIP_ROWS, pack_skip_rows);
        g_gl.PixelStorei(GL_PACK_SKIP_PIXELS, pack_skip_pixels);
        g_gl.BindBuffer(kGL_PIXEL_PACK_BUFFER, static_cast<GLuint>(pack_buffer));
        g_gl.BindBuffer(kGL_PIXEL_UNPACK_BUFFER, static_cast<GLuint>(unpack_buffer));
        g_gl.BindTexture(GL_TEXTURE_2D, static_cast<GLuint>(texture));
    }
};

// ---------------------------------------------------------------------------------------------
// Pose math. Poses map child coordinates to parent coordinates: p_parent = q * p_child + t.

XrQuaternionf qmul(const XrQuaternionf& a, const XrQuaternionf& b) {
    return {a.w * b.x + a.x * b.w + a.y * b.z - a.z * b.y, a.w * b.y - a.x * b.z + a.y * b.w + a.z * b.x,
            a.w * b.z + a.x * b.y - a.y * b.x + a.z * b.w, a.w * b.w - a.x * b.x - a.y * b.y - a.z * b.z};
}
XrQuaternionf qconj(const XrQuaternionf& q) { return {-q.x, -q.y, -q.z, q.w}; }
XrVector3f qrotate(const XrQuaternionf& q, const XrVector3f& v) {
    XrQuaternionf r = qmul(qmul(q, {v.x, v.y, v.z, 0.0f}), qconj(q));
    return {r.x, r.y, r.z};
}
XrPosef compose(const XrPosef& a, const XrPosef& b) {  // a * b: b expressed in a's parent
    XrVector3f t = qrotate(a.orientation, b.position);
    return {qmul(a.orientation, b.orientation),
            {a.position.x + t.x, a.position.y + t.y, a.position.z + t.z}};
}
XrPosef inverse(const XrPosef& a) {
    XrQuaternionf c = qconj(a.orientation);
    XrVector3f t = qrotate(c, a.position);
    return {c, {-t.x, -t.y, -t.z}};
}
const XrPosef kIdentity = {{0.0f, 0.0f, 0.0f, 1.0f}, {0.0f, 0.0f, 0.0f}};
bool unit_quaternion(const XrQuaternionf& q) {  // the spec's tolerance for "normalized"
    float n = std::sqrt(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w);
    return std::isfinite(n) && std::fabs(n - 1.0f) <= 1e-3f;
}

// ---------------------------------------------------------------------------------------------
// Objects. Handles are pointers to these; every handle the application passes is looked up in
// the registry of its type first, so a stale or foreign handle gives XR_ERROR_HANDLE_INVALID
// instead of a crash.

struct EyeView {
    XrPosef pose;
    XrFovf fov;
};
struct Script {
    uint32_t width = 256, height = 224;
    int64_t stop_after = 60;                 // submitted frames before STOPPING; <= 0: never
    std::vector<std::array<EyeView, 2>> frames;  // cycled
    // Eye gaze (XR_EXT_eye_gaze_interaction), per frame: the gaze's orientation in the tracking
    // origin (its -Z axis the direction looked in), or none (the eyes not tracked that frame).
    // Without any gaze line the system has no eye tracking (supportsEyeGazeInteraction false).
    std::map<int, XrQuaternionf> gaze;
};

struct XrInstance_T;
struct XrSession_T;
struct XrActionSet_T;

struct XrAction_T {
    XrActionSet_T* set;
    std::string name;
    XrActionType type;
    std::vector<XrPath> subaction_paths;
    bool gaze_bound = false;  // suggested for /user/eyes_ext/input/gaze_ext/pose (eye gaze profile)
};
struct XrActionSet_T {
    XrInstance_T* instance;
    std::string name;
    std::set<XrAction_T*> actions;
    bool attached = false;  // attached to a session: no more actions, no more suggestions
};
struct XrSpace_T {
    XrSession_T* session;
    bool is_action;
    XrReferenceSpaceType type;  // reference spaces
    XrAction_T* action;         // action spaces (untracked, but the eye gaze's where scripted)
    XrPosef offset;
};
struct XrSwapchain_T {
    XrSession_T* session;
    const GlFormat* format;
    uint32_t width, height, mips;
    std::array<GLuint, kImagesPerSwapchain> textures{};
    uint32_t next_acquire = 0;
    std::deque<uint32_t> acquired;  // oldest first; the front is the one to wait on and release
    bool front_waited = false;
    int64_t last_released = -1;
};
struct XrSession_T {
    XrInstance_T* instance;
    XrSessionState state = XR_SESSION_STATE_UNKNOWN;  // the last state queued for the application
    bool running = false;        // between a successful xrBeginSession and xrEndSession
    bool exit_requested = false;
    int64_t waited = 0;          // xrWaitFrame calls
    bool wait_pending = false;   // an xrWaitFrame not yet followed by xrBeginFrame
    bool frame_begun = false;    // an xrBeginFrame not yet followed by xrEndFrame
    int64_t ended = 0;           // xrEndFrame calls that submitted a frame
    int64_t records = 0;         // frame_K files written
    std::set<XrSpace_T*> spaces;
    std::set<XrSwapchain_T*> swapchains;
    std::set<XrActionSet_T*> attached;
    // The views xrLocateViews returned, by display time, to record beside the submitted layer.
    std::map<XrTime, std::vector<XrView>> located;
    std::set<XrTime> predicted;  // display times already located once (GSCACHE_XR_LATE_ERROR_DEG)
};
struct XrInstance_T {
    Script script;
    std::string record_dir;
    FILE* trace = nullptr;
    bool gl_enabled = false, depth_enabled = false, gaze_enabled = false;
    bool gl_requirements_queried = false;
    std::vector<int64_t> formats;
    float late_error_deg = 0.0f;
    XrTime start = 0;
    std::vector<std::string> paths{""};  // index = XrPath; 0 is XR_NULL_PATH
    std::unordered_map<std::string, XrPath> path_ids;
    std::deque<XrEventDataBuffer> events;
    std::set<XrSession_T*> sessions;
    std::set<XrActionSet_T*> action_sets;
};

template <typename T>
struct Registry {
    std::set<T*> live;
    T* get(T* handle) const { return live.count(handle) ? handle : nullptr; }
};
Registry<XrInstance_T> g_instances;
Registry<XrSession_T> g_sessions;
Registry<XrSpace_T> g_spaces;
Registry<XrSwapchain_T> g_swapchains;
Registry<XrActionSet_T> g_action_sets;
Registry<XrAction_T> g_actions;

// One lock around every entry point: the state machine is small and the spec lets applications
// call from several threads.
std::recursive_mutex g_mutex;
FILE* g_trace = nullptr;  // the current instance's trace.txt (the loader allows one instance)

void trace_call(const char* name) {
    if (g_trace) {
        std::fputs(name, g_trace);
        std::fputc('\n', g_trace);
        std::fflush(g_trace);  // a crash must not lose the calls that led to it
    }
}
#define ENTER()                                            \
    std::lock_guard<std::recursive_mutex> lock_(g_mutex); \
    trace_call(__func__)

XrTime now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<XrTime>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void warn(const std::string& message) { std::fprintf(stderr, "gscache test runtime: %s\n", message.c_str()); }

// The spec's two-call idiom: count query with capacity 0, XR_ERROR_SIZE_INSUFFICIENT when short.
template <typename T, typename Fill>
XrResult two_call(uint32_t capacity, uint32_t* count_out, T* out, uint32_t count, Fill fill) {
    if (count_out == nullptr) return XR_ERROR_VALIDATION_FAILURE;
    *count_out = count;
    if (capacity == 0) return XR_SUCCESS;
    if (capacity < count) return XR_ERROR_SIZE_INSUFFICIENT;
    if (out == nullptr) return XR_ERROR_VALIDATION_FAILURE;
    for (uint32_t i = 0; i < count; ++i) fill(out[i], i);
    return XR_SUCCESS;
}

const XrBaseInStructure* find_in_chain(const void* next, XrStructureType type) {
    for (auto* p = static_cast<const XrBaseInStructure*>(next); p; p = p->next)
        if (p->type == type) return p;
    return nullptr;
}

void queue_state(XrSession_T* s, XrSessionState state) {
    XrEventDataBuffer buffer{};
    auto* e = reinterpret_cast<XrEventDataSessionStateChanged*>(&buffer);
    e->type = XR_TYPE_EVENT_DATA_SESSION_STATE_CHANGED;
    e->next = nullptr;
    e->session = reinterpret_cast<XrSession>(s);
    e->state = state;
    e->time = now_ns();
    s->instance->events.push_back(buffer);
    s->state = state;
}

// The spec's state diagram walks FOCUSED -> VISIBLE -> SYNCHRONIZED -> STOPPING; queue each step
// from wherever the session is, so an application sees every transition it must handle.
void queue_stopping(XrSession_T* s) {
    if (s->state == XR_SESSION_STATE_STOPPING) return;
    if (s->state == XR_SESSION_STATE_FOCUSED) queue_state(s, XR_SESSION_STATE_VISIBLE);
    if (s->state == XR_SESSION_STATE_VISIBLE) queue_state(s, XR_SESSION_STATE_SYNCHRONIZED);
    queue_state(s, XR_SESSION_STATE_STOPPING);
}

// ---------------------------------------------------------------------------------------------
// Script.
//   size W H
//   frames N
//   view FRAME EYE qx qy qz qw px py pz angleLeft angleRight angleUp angleDown
//   gaze FRAME qx qy qz qw      (the eye gaze's orientation; its position is the head's)
// Blank lines and lines starting with '#' are ignored. Poses are in the tracking origin, which is
// also the natural origin of LOCAL and STAGE (identity offsets give these poses back).

Script default_script() {
    Script s;
    // Two eyes 64 mm apart at 1.6 m, looking down -Z, with slightly different asymmetric FOVs so
    // a test can tell the eyes apart.
    std::array<EyeView, 2> views = {{
        {{{0.0f, 0.0f, 0.0f, 1.0f}, {-0.032f, 1.6f, 0.0f}}, {-0.80f, 0.70f, 0.75f, -0.78f}},
        {{{0.0f, 0.0f, 0.0f, 1.0f}, {0.032f, 1.6f, 0.0f}}, {-0.70f, 0.80f, 0.76f, -0.77f}},
    }};
    s.frames.push_back(views);
    return s;
}

bool parse_script(const std::string& path, Script* out, std::string* error) {
    std::ifstream in(path);
    if (!in) {
        *error = "cannot open script " + path;
        return false;
    }
    Script s;
    std::map<int, std::map<int, EyeView>> views;
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
        ++number;
        std::istringstream words(line);
        std::string key;
        if (!(words >> key) || key[0] == '#') continue;
        bool ok = true;
        if (key == "size") {
            ok = static_cast<bool>(words >> s.width >> s.height) && s.width > 0 && s.height > 0 &&
                 s.width <= kMaxImageSize && s.height <= kMaxImageSize;
        } else if (key == "frames") {
            ok = static_cast<bool>(words >> s.stop_after);
        } else if (key == "view") {
            int frame = -1, eye = -1;
            EyeView v{};
            ok = static_cast<bool>(words >> frame >> eye >> v.pose.orientation.x >> v.pose.orientation.y >>
                                   v.pose.orientation.z >> v.pose.orientation.w >> v.pose.position.x >>
                                   v.pose.position.y >> v.pose.position.z >> v.fov.angleLeft >>
                                   v.fov.angleRight >> v.fov.angleUp >> v.fov.angleDown) &&
                 frame >= 0 && (eye == 0 || eye == 1);
            if (ok) views[frame][eye] = v;
        } else if (key == "gaze") {
            int frame = -1;
            XrQuaternionf q{};
            ok = static_cast<bool>(words >> frame >> q.x >> q.y >> q.z >> q.w) && frame >= 0;
            if (ok) s.gaze[frame] = q;
        } else {
            ok = false;
        }
        std::string extra;
        if (!ok || (words >> extra)) {
            *error = path + ":" + std::to_string(number) + ": cannot parse \"" + line + "\"";
            return false;
        }
    }
    if (views.empty()) {
        s.frames = default_script().frames;
    } else {
        int count = views.rbegin()->first + 1;
        for (int f = 0; f < count; ++f) {
            if (!views.count(f) || views[f].size() != 2) {
                *error = path + ": frame " + std::to_string(f) + " needs a view line for eye 0 and eye 1";
                return false;
            }
            s.frames.push_back({views[f][0], views[f][1]});
        }
    }
    *out = s;
    return true;
}

// The scripted frame whose predicted display time is t: frame n is displayed at start+(n+1)*period
// (the script cycles).
size_t script_frame(const XrInstance_T* inst, XrTime t) {
    int64_t n = std::llround(static_cast<double>(t - inst->start) / kFramePeriod) - 1;
    if (n < 0) n = 0;
    return static_cast<size_t>(n) % inst->script.frames.size();
}

const std::array<EyeView, 2>& views_at(const XrInstance_T* inst, XrTime t) {
    return inst->script.frames[script_frame(inst, t)];
}

// VIEW space: midway between the eyes, oriented like eye 0 (the scripted eyes share orientation).
XrPosef head_pose(const std::array<EyeView, 2>& v) {
    XrPosef p = v[0].pose;
    p.position = {(v[0].pose.position.x + v[1].pose.position.x) / 2, (v[0].pose.position.y + v[1].pose.position.y) / 2,
                  (v[0].pose.position.z + v[1].pose.position.z) / 2};
    return p;
}

// Where a reference space's origin is in the tracking origin at time t.
XrPosef space_in_origin(const XrSpace_T* space, XrTime t) {
    XrPosef base = kIdentity;  // LOCAL and STAGE share the tracking origin
    if (space->type == XR_REFERENCE_SPACE_TYPE_VIEW) base = head_pose(views_at(space->session->instance, t));
    return compose(base, space->offset);
}

// ---------------------------------------------------------------------------------------------
// Paths. Well-formed per the spec: starts with '/', no empty, "." or ".." component, no trailing
// '/', characters from [a-z0-9-_./].

bool well_formed_path(const char* s) {
    size_t n = std::strlen(s);
    if (n == 0 || n >= XR_MAX_PATH_LENGTH || s[0] != '/' || s[n - 1] == '/') return false;
    std::string component;
    for (size_t i = 1; i <= n; ++i) {
        char c = s[i];
        if (c == '/' || c == '\0') {
            if (component.empty() || component == "." || component == "..") return false;
            component.clear();
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) return false;
        component += c;
    }
    return true;
}
bool valid_path(const XrInstance_T* inst, XrPath p) { return p != XR_NULL_PATH && p < inst->paths.size(); }
XrPath intern_path(XrInstance_T* inst, const std::string& s) {
    auto it = inst->path_ids.find(s);
    if (it != inst->path_ids.end()) return it->second;
    XrPath id = inst->paths.size();
    inst->paths.push_back(s);
    inst->path_ids[s] = id;
    return id;
}

// Action and action set names: non-empty, [a-z0-9-_.].
bool well_formed_name(const char* s, size_t max) {
    size_t n = strnlen(s, max);
    if (n == 0 || n == max) return false;
    for (size_t i = 0; i < n; ++i) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) return false;
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// Lookups shared by many entry points.

XrInstance_T* get(XrInstance h) { return g_instances.get(reinterpret_cast<XrInstance_T*>(h)); }
XrSession_T* get(XrSession h) { return g_sessions.get(reinterpret_cast<XrSession_T*>(h)); }
XrSpace_T* get(XrSpace h) { return g_spaces.get(reinterpret_cast<XrSpace_T*>(h)); }
XrSwapchain_T* get(XrSwapchain h) { return g_swapchains.get(reinterpret_cast<XrSwapchain_T*>(h)); }
XrActionSet_T* get(XrActionSet h) { return g_action_sets.get(reinterpret_cast<XrActionSet_T*>(h)); }
XrAction_T* get(XrAction h) { return g_actions.get(reinterpret_cast<XrAction_T*>(h)); }

void destroy_swapchain(XrSwapchain_T* sc) {
    if (g_gl.usable()) {
        g_gl.DeleteTextures(kImagesPerSwapchain, sc->textures.data());
    } else {
        // Without the application's context current the textures cannot be deleted here; they go
        // with the context.
        warn("swapchain destroyed without a current GL context; its textures are left to the context");
    }
    sc->session->swapchains.erase(sc);
    g_swapchains.live.erase(sc);
    delete sc;
}
void destroy_space(XrSpace_T* sp) {
    sp->session->spaces.erase(sp);
    g_spaces.live.erase(sp);
    delete sp;
}
void destroy_session(XrSession_T* s) {
    for (XrSwapchain_T* sc : std::set<XrSwapchain_T*>(s->swapchains)) destroy_swapchain(sc);
    for (XrSpace_T* sp : std::set<XrSpace_T*>(s->spaces)) destroy_space(sp);
    // Events still queued for this session must not be delivered with a dead handle.
    auto& ev = s->instance->events;
    ev.erase(std::remove_if(ev.begin(), ev.end(),
                            [s](const XrEventDataBuffer& b) {
                                auto* e = reinterpret_cast<const XrEventDataSessionStateChanged*>(&b);
                                return e->type == XR_TYPE_EVENT_DATA_SESSION_STATE_CHANGED &&
                                       e->session == reinterpret_cast<XrSession>(s);
                            }),
             ev.end());
    s->instance->sessions.erase(s);
    g_sessions.live.erase(s);
    delete s;
}
void destroy_action(XrAction_T* a) {
    a->set->actions.erase(a);
    g_actions.live.erase(a);
    delete a;
}
void destroy_action_set(XrActionSet_T* set) {
    for (XrAction_T* a : std::set<XrAction_T*>(set->actions)) destroy_action(a);
    set->instance->action_sets.erase(set);
    g_action_sets.live.erase(set);
    delete set;
}

// ---------------------------------------------------------------------------------------------
// Instance.

XrResult xrGetInstanceProcAddr(XrInstance instance, const char* name, PFN_xrVoidFunction* function);

XrResult xrEnumerateApiLayerProperties(uint32_t capacity, uint32_t* count, XrApiLayerProperties* props) {
    ENTER();
    return two_call(capacity, count, props, 0, [](XrApiLayerProperties&, uint32_t) {});
}

struct ExtensionInfo {
    const char* name;
    uint32_t version;
};
const ExtensionInfo kExtensions[] = {
    {XR_KHR_OPENGL_ENABLE_EXTENSION_NAME, XR_KHR_opengl_enable_SPEC_VERSION},
    {XR_KHR_COMPOSITION_LAYER_DEPTH_EXTENSION_NAME, XR_KHR_composition_layer_depth_SPEC_VERSION},
    {XR_EXT_EYE_GAZE_INTERACTION_EXTENSION_NAME, XR_EXT_eye_gaze_interaction_SPEC_VERSION},
};
const char kGazeProfile[] = "/interaction_profiles/ext/eye_gaze_interaction";
const char kGazePose[] = "/user/eyes_ext/input/gaze_ext/pose";

XrResult xrEnumerateInstanceExtensionProperties(const char* layerName, uint32_t capacity, uint32_t* count,
                                                XrExtensionProperties* props) {
    ENTER();
    if (layerName != nullptr && layerName[0] != '\0') return XR_ERROR_API_LAYER_NOT_PRESENT;
    if (capacity > 0 && props != nullptr)
        for (uint32_t i = 0; i < capacity; ++i)
            if (props[i].type != XR_TYPE_EXTENSION_PROPERTIES) return XR_ERROR_VALIDATION_FAILURE;
    constexpr auto n = static_cast<uint32_t>(std::size(kExtensions));
    return two_call(capacity, count, props, n, [](XrExtensionProperties& p, uint32_t i) {
        std::snprintf(p.extensionName, sizeof p.extensionName, "%s", kExtensions[i].name);
        p.extensionVersion = kExtensions[i].version;
    });
}

XrResult xrCreateInstance(const XrInstanceCreateInfo* info, XrInstance* instance) {
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (info == nullptr || instance == nullptr || info->type != XR_TYPE_INSTANCE_CREATE_INFO)
        return XR_ERROR_VALIDATION_FAILURE;
    XrVersion v = info->applicationInfo.apiVersion;
    if (XR_VERSION_MAJOR(v) != 1 || XR_VERSION_MINOR(v) != 0) return XR_ERROR_API_VERSION_UNSUPPORTED;
    if (info->applicationInfo.applicationName[0] == '\0') return XR_ERROR_NAME_INVALID;
    auto inst = std::make_unique<XrInstance_T>();
    for (uint32_t i = 0; i < info->enabledExtensionCount; ++i) {
        const char* e = info->enabledExtensionNames[i];
        if (std::strcmp(e, XR_KHR_OPENGL_ENABLE_EXTENSION_NAME) == 0)
            inst->gl_enabled = true;
        else if (std::strcmp(e, XR_KHR_COMPOSITION_LAYER_DEPTH_EXTENSION_NAME) == 0)
            inst->depth_enabled = true;
        else if (std::strcmp(e, XR_EXT_EYE_GAZE_INTERACTION_EXTENSION_NAME) == 0)
            inst->gaze_enabled = true;
        else
            return XR_ERROR_EXTENSION_NOT_PRESENT;
    }
    // The loader keeps one instance alive at a time, and the trace file is per process.
    if (!g_instances.live.empty()) return XR_ERROR_LIMIT_REACHED;

    inst->script = default_script();
    if (const char* script = std::getenv("GSCACHE_XR_SCRIPT"); script && *script) {
        std::string error;
        if (!parse_script(script, &inst->script, &error)) {
            warn(error);
            return XR_ERROR_INITIALIZATION_FAILED;
        }
    }
    std::string formats = "0x8C43,0x8058,0x881A,0x8CAC";
    if (const char* f = std::getenv("GSCACHE_XR_FORMATS"); f && *f) formats = f;
    std::istringstream fs(formats);
    for (std::string item; std::getline(fs, item, ',');) {
        char* end = nullptr;
        errno = 0;
        long long value = std::strtoll(item.c_str(), &end, 16);
        if (errno != 0 || end == item.c_str() || find_format(value) == nullptr) {
            warn("GSCACHE_XR_FORMATS: ignoring unknown format \"" + item + "\"");
            continue;
        }
        inst->formats.push_back(value);
    }
    if (const char* late = std::getenv("GSCACHE_XR_LATE_ERROR_DEG"); late && *late)
        inst->late_error_deg = std::strtof(late, nullptr);
    if (const char* record = std::getenv("GSCACHE_XR_RECORD"); record && *record) {
        inst->record_dir = record;
        std::string path = inst->record_dir + "/trace.txt";
        inst->trace = std::fopen(path.c_str(), "w");
        if (inst->trace == nullptr) {
            warn("cannot write " + path);
            return XR_ERROR_INITIALIZATION_FAILED;
        }
    }
    inst->start = now_ns();
    XrInstance_T* raw = inst.release();
    g_instances.live.insert(raw);
    g_trace = raw->trace;
    trace_call("xrCreateInstance");
    *instance = reinterpret_cast<XrInstance>(raw);
    return XR_SUCCESS;
}

XrResult xrDestroyInstance(XrInstance instance) {
    ENTER();
    XrInstance_T* inst = get(instance);
    if (inst == nullptr) return XR_ERROR_HANDLE_INVALID;
    for (XrSession_T* s : std::set<XrSession_T*>(inst->sessions)) destroy_session(s);
    for (XrActionSet_T* a : std::set<XrActionSet_T*>(inst->action_sets)) destroy_action_set(a);
    if (inst->trace) std::fclose(inst->trace);
    g_trace = nullptr;
    g_instances.live.erase(inst);
    delete inst;
    return XR_SUCCESS;
}

XrResult xrGetInstanceProperties(XrInstance instance, XrInstanceProperties* props) {
    ENTER();
    if (get(instance) == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (props == nullptr || props->type != XR_TYPE_INSTANCE_PROPERTIES) return XR_ERROR_VALIDATION_FAILURE;
    props->runtimeVersion = kRuntimeVersion;
    std::snprintf(props->runtimeName, sizeof props->runtimeName, "%s", kRuntimeName);
    return XR_SUCCESS;
}

XrResult xrPollEvent(XrInstance instance, XrEventDataBuffer* event) {
    ENTER();
    XrInstance_T* inst = get(instance);
    if (inst == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (event == nullptr || event->type != XR_TYPE_EVENT_DATA_BUFFER) return XR_ERROR_VALIDATION_FAILURE;
    if (inst->events.empty()) return XR_EVENT_UNAVAILABLE;
    *event = inst->events.front();
    inst->events.pop_front();
    return XR_SUCCESS;
}

// The reflection header lists every value the 1.0.20 headers know; others get the spec's
// numeric fallback.
XrResult xrResultToString(XrInstance instance, XrResult value, char buffer[XR_MAX_RESULT_STRING_SIZE]) {
    ENTER();
    if (get(instance) == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (buffer == nullptr) return XR_ERROR_VALIDATION_FAILURE;
    const char* name = nullptr;
    switch (value) {
#define GSCACHE_RESULT_CASE(n, v) \
    case n:                      \
        name = #n;               \
        break;
        XR_LIST_ENUM_XrResult(GSCACHE_RESULT_CASE)
#undef GSCACHE_RESULT_CASE
        default:
            break;
    }
    if (name)
        std::snprintf(buffer, XR_MAX_RESULT_STRING_SIZE, "%s", name);
    else
        std::snprintf(buffer, XR_MAX_RESULT_STRING_SIZE, value >= 0 ? "XR_UNKNOWN_SUCCESS_%d" : "XR_UNKNOWN_FAILURE_%d",
                      static_cast<int>(value));
    return XR_SUCCESS;
}

XrResult xrStructureTypeToString(XrInstance instance, XrStructureType value,
                                 char buffer[XR_MAX_STRUCTURE_NAME_SIZE]) {
    ENTER();
    if (get(instance) == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (buffer == nullptr) return XR_ERROR_VALIDATION_FAILURE;
    const char* name = nullptr;
    switch (value) {
#define GSCACHE_TYPE_CASE(n, v) \
    case n:                    \
        name = #n;             \
        break;
        XR_LIST_ENUM_XrStructureType(GSCACHE_TYPE_CASE)
#undef GSCACHE_TYPE_CASE
        default:
            break;
    }
    if (name)
        std::snprintf(buffer, XR_MAX_STRUCTURE_NAME_SIZE, "%s", name);
    else
        std::snprintf(buffer, XR_MAX_STRUCTURE_NAME_SIZE, "XR_UNKNOWN_STRUCTURE_TYPE_%d", static_cast<int>(value));
    return XR_SUCCESS;
}

XrResult xrStringToPath(XrInstance instance, const char* pathString, XrPath* path) {
    ENTER();
    XrInstance_T* inst = get(instance);
    if (inst == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (pathString == nullptr || path == nullptr) return XR_ERROR_VALIDATION_FAILURE;
    if (!well_formed_path(pathString)) return XR_ERROR_PATH_FORMAT_INVALID;
    *path = intern_path(inst, pathString);
    return XR_SUCCESS;
}

XrResult xrPathToString(XrInstance instance, XrPath path, uint32_t capacity, uint32_t* count, char* buffer) {
    ENTER();
    XrInstance_T* inst = get(instance);
    if (inst == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (!valid_path(inst, path)) return XR_ERROR_PATH_INVALID;
    const std::string& s = inst->paths[path];
    return two_call(capacity, count, buffer, static_cast<uint32_t>(s.size() + 1),
                    [&s](char& c, uint32_t i) { c = i < s.size() ? s[i] : '\0'; });
}

// ---------------------------------------------------------------------------------------------
// System and view configuration.

XrResult xrGetSystem(XrInstance instance, const XrSystemGetInfo* info, XrSystemId* systemId) {
    ENTER();
    if (get(instance) == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (info == nullptr || systemId == nullptr || info->type != XR_TYPE_SYSTEM_GET_INFO)
        return XR_ERROR_VALIDATION_FAILURE;
    if (info->formFactor == XR_FORM_FACTOR_HEAD_MOUNTED_DISPLAY) {
        *systemId = kSystemId;
        return XR_SUCCESS;
    }
    if (info->formFactor == XR_FORM_FACTOR_HANDHELD_DISPLAY) return XR_ERROR_FORM_FACTOR_UNSUPPORTED;
    return XR_ERROR_VALIDATION_FAILURE;
}

XrResult xrGetSystemProperties(XrInstance instance, XrSystemId systemId, XrSystemProperties* props) {
    ENTER();
    if (get(instance) == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (systemId != kSystemId) return XR_ERROR_SYSTEM_INVALID;
    if (props == nullptr || props->type != XR_TYPE_SYSTEM_PROPERTIES) return XR_ERROR_VALIDATION_FAILURE;
    props->systemId = kSystemId;
    props->vendorId = 0;
    std::snprintf(props->systemName, sizeof props->systemName, "gscache test HMD");
    props->graphicsProperties.maxSwapchainImageWidth = kMaxImageSize;
    props->graphicsProperties.maxSwapchainImageHeight = kMaxImageSize;
    props->graphicsProperties.maxLayerCount = kMaxLayers;
    props->trackingProperties.orientationTracking = XR_TRUE;
    props->trackingProperties.positionTracking = XR_TRUE;
    const XrInstance_T* inst = get(instance);
    for (auto* next = static_cast<XrBaseOutStructure*>(props->next); next != nullptr; next = next->next)
        if (next->type == XR_TYPE_SYSTEM_EYE_GAZE_INTERACTION_PROPERTIES_EXT && inst->gaze_enabled)
            reinterpret_cast<XrSystemEyeGazeInteractionPropertiesEXT*>(next)->supportsEyeGazeInteraction =
                inst->script.gaze.empty() ? XR_FALSE : XR_TRUE;
    return XR_SUCCESS;
}

XrResult xrEnumerateEnvironmentBlendModes(XrInstance instance, XrSystemId systemId, XrViewConfigurationType type,
                                          uint32_t capacity, uint32_t* count, XrEnvironmentBlendMode* modes) {
    ENTER();
    if (get(instance) == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (systemId != kSystemId) return XR_ERROR_SYSTEM_INVALID;
    if (type != XR_VIEW_CONFIGURATION_TYPE_PRIMARY_STEREO) return XR_ERROR_VIEW_CONFIGURATION_TYPE_UNSUPPORTED;
    return two_call(capacity, count, modes, 1,
                    [](XrEnvironmentBlendMode& m, uint32_t) { m = XR_ENVIRONMENT_BLEND_MODE_OPAQUE; });
}

XrResult xrEnumerateViewConfigurations(XrInstance instance, XrSystemId systemId, uint32_t capacity, uint32_t* count,
                                       XrViewConfigurationType* types) {
    ENTER();
    if (get(instance) == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (systemId != kSystemId) return XR_ERROR_SYSTEM_INVALID;
    return two_call(capacity, count, types, 1,
                    [](XrViewConfigurationType& t, uint32_t) { t = XR_VIEW_CONFIGURATION_TYPE_PRIMARY_STEREO; });
}

XrResult xrGetViewConfigurationProperties(XrInstance instance, XrSystemId systemId, XrViewConfigurationType type,
                                          XrViewConfigurationProperties* props) {
    ENTER();
    if (get(instance) == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (systemId != kSystemId) return XR_ERROR_SYSTEM_INVALID;
    if (type != XR_VIEW_CONFIGURATION_TYPE_PRIMARY_STEREO) return XR_ERROR_VIEW_CONFIGURATION_TYPE_UNSUPPORTED;
    if (props == nullptr || props->type != XR_TYPE_VIEW_CONFIGURATION_PROPERTIES) return XR_ERROR_VALIDATION_FAILURE;
    props->viewConfigurationType = type;
    props->fovMutable = XR_TRUE;
    return XR_SUCCESS;
}

XrResult xrEnumerateViewConfigurationViews(XrInstance instance, XrSystemId systemId, XrViewConfigurationType type,
                                           uint32_t capacity, uint32_t* count, XrViewConfigurationView* views) {
    ENTER();
    XrInstance_T* inst = get(instance);
    if (inst == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (systemId != kSystemId) return XR_ERROR_SYSTEM_INVALID;
    if (type != XR_VIEW_CONFIGURATION_TYPE_PRIMARY_STEREO) return XR_ERROR_VIEW_CONFIGURATION_TYPE_UNSUPPORTED;
    if (capacity >= 2 && views != nullptr)
        for (uint32_t i = 0; i < 2; ++i)
            if (views[i].type != XR_TYPE_VIEW_CONFIGURATION_VIEW) return XR_ERROR_VALIDATION_FAILURE;
    return two_call(capacity, count, views, 2, [inst](XrViewConfigurationView& v, uint32_t) {
        v.recommendedImageRectWidth = inst->script.width;
        v.recommendedImageRectHeight = inst->script.height;
        v.maxImageRectWidth = kMaxImageSize;
        v.maxImageRectHeight = kMaxImageSize;
        v.recommendedSwapchainSampleCount = 1;
        v.maxSwapchainSampleCount = 1;
    });
}

XrResult xrGetOpenGLGraphicsRequirementsKHR(XrInstance instance, XrSystemId systemId,
                                            XrGraphicsRequirementsOpenGLKHR* requirements) {
    ENTER();
    XrInstance_T* inst = get(instance);
    if (inst == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (systemId != kSystemId) return XR_ERROR_SYSTEM_INVALID;
    if (requirements == nullptr || requirements->type != XR_TYPE_GRAPHICS_REQUIREMENTS_OPENGL_KHR)
        return XR_ERROR_VALIDATION_FAILURE;
    requirements->minApiVersionSupported = XR_MAKE_VERSION(3, 3, 0);  // what the viewer asks Mesa for
    requirements->maxApiVersionSupported = XR_MAKE_VERSION(4, 6, 0);
    inst->gl_requirements_queried = true;
    return XR_SUCCESS;
}

// ---------------------------------------------------------------------------------------------
// Session.

XrResult xrCreateSession(XrInstance instance, const XrSessionCreateInfo* info, XrSession* session) {
    ENTER();
    XrInstance_T* inst = get(instance);
    if (inst == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (info == nullptr || session == nullptr || info->type != XR_TYPE_SESSION_CREATE_INFO || info->createFlags != 0)
        return XR_ERROR_VALIDATION_FAILURE;
    if (info->systemId != kSystemId) return XR_ERROR_SYSTEM_INVALID;
    auto* binding = reinterpret_cast<const XrGraphicsBindingOpenGLXlibKHR*>(
        find_in_chain(info->next, XR_TYPE_GRAPHICS_BINDING_OPENGL_XLIB_KHR));
    if (binding == nullptr || !inst->gl_enabled) return XR_ERROR_GRAPHICS_DEVICE_INVALID;
    if (!inst->gl_requirements_queried) return XR_ERROR_GRAPHICS_REQUIREMENTS_CALL_MISSING;
    if (binding->xDisplay == nullptr || binding->glxContext == nullptr || binding->glxDrawable == 0)
        return XR_ERROR_GRAPHICS_DEVICE_INVALID;
    // The binding's visual must be the FB config's: a mismatch means the application passed
    // values from different GLX objects, which a real runtime would fail on later.
    if (g_gl.load() && g_gl.GetFBConfigAttrib && binding->glxFBConfig) {
        int visual = 0;
        if (g_gl.GetFBConfigAttrib(binding->xDisplay, binding->glxFBConfig, GLX_VISUAL_ID, &visual) != 0 ||
            static_cast<uint32_t>(visual) != binding->visualid) {
            warn("XrGraphicsBindingOpenGLXlibKHR: visualid " + std::to_string(binding->visualid) +
                 " is not the GLX_VISUAL_ID " + std::to_string(visual) + " of glxFBConfig");
            return XR_ERROR_GRAPHICS_DEVICE_INVALID;
        }
    }
    if (!inst->sessions.empty()) return XR_ERROR_LIMIT_REACHED;  // one HMD, one session
    auto* s = new XrSession_T();
    s->instance = inst;
    inst->sessions.insert(s);
    g_sessions.live.insert(s);
    queue_state(s, XR_SESSION_STATE_IDLE);
    queue_state(s, XR_SESSION_STATE_READY);
    *session = reinterpret_cast<XrSession>(s);
    return XR_SUCCESS;
}

XrResult xrDestroySession(XrSession session) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    destroy_session(s);
    return XR_SUCCESS;
}

XrResult xrBeginSession(XrSession session, const XrSessionBeginInfo* info) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (info == nullptr || info->type != XR_TYPE_SESSION_BEGIN_INFO) return XR_ERROR_VALIDATION_FAILURE;
    if (info->primaryViewConfigurationType != XR_VIEW_CONFIGURATION_TYPE_PRIMARY_STEREO)
        return XR_ERROR_VIEW_CONFIGURATION_TYPE_UNSUPPORTED;
    if (s->running) return XR_ERROR_SESSION_RUNNING;
    if (s->state != XR_SESSION_STATE_READY) return XR_ERROR_SESSION_NOT_READY;
    s->running = true;
    queue_state(s, XR_SESSION_STATE_SYNCHRONIZED);
    queue_state(s, XR_SESSION_STATE_VISIBLE);
    queue_state(s, XR_SESSION_STATE_FOCUSED);
    return XR_SUCCESS;
}

XrResult xrEndSession(XrSession session) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (!s->running) return XR_ERROR_SESSION_NOT_RUNNING;
    if (s->state != XR_SESSION_STATE_STOPPING) return XR_ERROR_SESSION_NOT_STOPPING;
    s->running = false;
    s->wait_pending = s->frame_begun = false;
    // The test runtime only stops a session to end the run, so IDLE is followed by EXITING.
    queue_state(s, XR_SESSION_STATE_IDLE);
    queue_state(s, XR_SESSION_STATE_EXITING);
    return XR_SUCCESS;
}

XrResult xrRequestExitSession(XrSession session) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (!s->running) return XR_ERROR_SESSION_NOT_RUNNING;
    s->exit_requested = true;
    queue_stopping(s);
    return XR_SUCCESS;
}

// ---------------------------------------------------------------------------------------------
// Spaces.

XrResult xrEnumerateReferenceSpaces(XrSession session, uint32_t capacity, uint32_t* count,
                                    XrReferenceSpaceType* spaces) {
    ENTER();
    if (get(session) == nullptr) return XR_ERROR_HANDLE_INVALID;
    static const XrReferenceSpaceType kSpaces[] = {XR_REFERENCE_SPACE_TYPE_VIEW, XR_REFERENCE_SPACE_TYPE_LOCAL,
                                                   XR_REFERENCE_SPACE_TYPE_STAGE};
    return two_call(capacity, count, spaces, 3, [](XrReferenceSpaceType& t, uint32_t i) { t = kSpaces[i]; });
}

XrResult xrCreateReferenceSpace(XrSession session, const XrReferenceSpaceCreateInfo* info, XrSpace* space) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (info == nullptr || space == nullptr || info->type != XR_TYPE_REFERENCE_SPACE_CREATE_INFO)
        return XR_ERROR_VALIDATION_FAILURE;
    if (info->referenceSpaceType != XR_REFERENCE_SPACE_TYPE_VIEW &&
        info->referenceSpaceType != XR_REFERENCE_SPACE_TYPE_LOCAL &&
        info->referenceSpaceType != XR_REFERENCE_SPACE_TYPE_STAGE)
        return XR_ERROR_REFERENCE_SPACE_UNSUPPORTED;
    if (!unit_quaternion(info->poseInReferenceSpace.orientation)) return XR_ERROR_POSE_INVALID;
    auto* sp = new XrSpace_T{s, false, info->referenceSpaceType, nullptr, info->poseInReferenceSpace};
    s->spaces.insert(sp);
    g_spaces.live.insert(sp);
    *space = reinterpret_cast<XrSpace>(sp);
    return XR_SUCCESS;
}

XrResult xrGetReferenceSpaceBoundsRect(XrSession session, XrReferenceSpaceType type, XrExtent2Df* bounds) {
    ENTER();
    if (get(session) == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (bounds == nullptr) return XR_ERROR_VALIDATION_FAILURE;
    if (type != XR_REFERENCE_SPACE_TYPE_VIEW && type != XR_REFERENCE_SPACE_TYPE_LOCAL &&
        type != XR_REFERENCE_SPACE_TYPE_STAGE)
        return XR_ERROR_REFERENCE_SPACE_UNSUPPORTED;
    *bounds = {0.0f, 0.0f};  // no play area is known
    return XR_SPACE_BOUNDS_UNAVAILABLE;
}

// The eye gaze action of session s is active: bound to the gaze pose with the extension
// enabled, its set attached, and the system scripted with eye tracking.
bool gaze_active(const XrSession_T* s, const XrAction_T* a) {
    return a != nullptr && a->gaze_bound && s->instance->gaze_enabled && !s->instance->script.gaze.empty() &&
           s->attached.count(a->set) != 0;
}

// The scripted gaze orientation of an eye gaze action space at time t (null: not tracked then).
const XrQuaternionf* gaze_at(const XrSpace_T* sp, XrTime t) {
    if (!sp->is_action || !gaze_active(sp->session, sp->action)) return nullptr;
    const XrInstance_T* inst = sp->session->instance;
    auto it = inst->script.gaze.find(static_cast<int>(script_frame(inst, t)));
    return it == inst->script.gaze.end() ? nullptr : &it->second;
}

XrResult xrCreateActionSpace(XrSession session, const XrActionSpaceCreateInfo* info, XrSpace* space) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (info == nullptr || space == nullptr || info->type != XR_TYPE_ACTION_SPACE_CREATE_INFO)
        return XR_ERROR_VALIDATION_FAILURE;
    XrAction_T* a = get(info->action);
    if (a == nullptr || a->set->instance != s->instance) return XR_ERROR_HANDLE_INVALID;
    if (a->type != XR_ACTION_TYPE_POSE_INPUT) return XR_ERROR_ACTION_TYPE_MISMATCH;
    if (info->subactionPath != XR_NULL_PATH &&
        std::find(a->subaction_paths.begin(), a->subaction_paths.end(), info->subactionPath) ==
            a->subaction_paths.end())
        return valid_path(s->instance, info->subactionPath) ? XR_ERROR_PATH_UNSUPPORTED : XR_ERROR_PATH_INVALID;
    if (!unit_quaternion(info->poseInActionSpace.orientation)) return XR_ERROR_POSE_INVALID;
    auto* sp = new XrSpace_T{s, true, XR_REFERENCE_SPACE_TYPE_LOCAL, a, info->poseInActionSpace};
    s->spaces.insert(sp);
    g_spaces.live.insert(sp);
    *space = reinterpret_cast<XrSpace>(sp);
    return XR_SUCCESS;
}

XrResult xrDestroySpace(XrSpace space) {
    ENTER();
    XrSpace_T* sp = get(space);
    if (sp == nullptr) return XR_ERROR_HANDLE_INVALID;
    destroy_space(sp);
    return XR_SUCCESS;
}

XrResult xrLocateSpace(XrSpace space, XrSpace baseSpace, XrTime time, XrSpaceLocation* location) {
    ENTER();
    XrSpace_T* sp = get(space);
    XrSpace_T* base = get(baseSpace);
    if (sp == nullptr || base == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (sp->session != base->session) return XR_ERROR_VALIDATION_FAILURE;
    if (location == nullptr || location->type != XR_TYPE_SPACE_LOCATION) return XR_ERROR_VALIDATION_FAILURE;
    if (time <= 0) return XR_ERROR_TIME_INVALID;
    const bool gaze = sp->is_action && gaze_at(sp, time) != nullptr && !base->is_action;
    if ((sp->is_action && !gaze) || base->is_action) {  // no controllers are tracked
        location->locationFlags = 0;
        location->pose = kIdentity;
        return XR_SUCCESS;
    }
    for (auto* next = static_cast<XrBaseOutStructure*>(location->next); next != nullptr; next = next->next)
        if (next->type == XR_TYPE_EYE_GAZE_SAMPLE_TIME_EXT)  // the scripted gaze is sampled at the asked time
            reinterpret_cast<XrEyeGazeSampleTimeEXT*>(next)->time = gaze ? time : 0;
    XrPosef in_origin = space_in_origin(sp->is_action ? base : sp, time);
    if (gaze) {
        in_origin = compose(XrPosef{*gaze_at(sp, time), head_pose(views_at(sp->session->instance, time)).position},
                            sp->offset);
    }
    location->pose = compose(inverse(space_in_origin(base, time)), in_origin);
    location->locationFlags = XR_SPACE_LOCATION_ORIENTATION_VALID_BIT | XR_SPACE_LOCATION_POSITION_VALID_BIT |
                              XR_SPACE_LOCATION_ORIENTATION_TRACKED_BIT | XR_SPACE_LOCATION_POSITION_TRACKED_BIT;
    return XR_SUCCESS;
}

XrResult xrLocateViews(XrSession session, const XrViewLocateInfo* info, XrViewState* state, uint32_t capacity,
                       uint32_t* count, XrView* views) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (info == nullptr || state == nullptr || info->type != XR_TYPE_VIEW_LOCATE_INFO ||
        state->type != XR_TYPE_VIEW_STATE)
        return XR_ERROR_VALIDATION_FAILURE;
    if (info->viewConfigurationType != XR_VIEW_CONFIGURATION_TYPE_PRIMARY_STEREO)
        return XR_ERROR_VIEW_CONFIGURATION_TYPE_UNSUPPORTED;
    if (info->displayTime <= 0) return XR_ERROR_TIME_INVALID;
    XrSpace_T* space = get(info->space);
    if (space == nullptr || space->session != s) return XR_ERROR_HANDLE_INVALID;
    if (capacity >= 2 && views != nullptr)
        for (uint32_t i = 0; i < 2; ++i)
            if (views[i].type != XR_TYPE_VIEW) return XR_ERROR_VALIDATION_FAILURE;
    if (space->is_action) {  // views cannot be related to an untracked controller
        state->viewStateFlags = 0;
        return two_call(capacity, count, views, 2, [](XrView& v, uint32_t) {
            v.pose = kIdentity;
            v.fov = {};
        });
    }
    const auto& eyes = views_at(s->instance, info->displayTime);
    XrPosef to_space = inverse(space_in_origin(space, info->displayTime));
    // A stale first prediction (GSCACHE_XR_LATE_ERROR_DEG): turned about the origin's +y.
    XrPosef early = kIdentity;
    const bool first = !s->predicted.count(info->displayTime);
    if (first && s->instance->late_error_deg != 0.0f) {
        const float half = 0.5f * s->instance->late_error_deg * 3.14159265358979f / 180.0f;
        early.orientation = {0.0f, std::sin(half), 0.0f, std::cos(half)};
    }
    if (capacity >= 2 && views != nullptr) {
        s->predicted.insert(info->displayTime);
        while (s->predicted.size() > 8) s->predicted.erase(s->predicted.begin());
    }
    XrResult r = two_call(capacity, count, views, 2, [&](XrView& v, uint32_t i) {
        v.pose = compose(to_space, compose(early, eyes[i].pose));
        v.fov = eyes[i].fov;
    });
    if (r == XR_SUCCESS && capacity >= 2) {
        state->viewStateFlags = XR_VIEW_STATE_ORIENTATION_VALID_BIT | XR_VIEW_STATE_POSITION_VALID_BIT |
                                XR_VIEW_STATE_ORIENTATION_TRACKED_BIT | XR_VIEW_STATE_POSITION_TRACKED_BIT;
        s->located[info->displayTime] = std::vector<XrView>(views, views + 2);
        while (s->located.size() > 8) s->located.erase(s->located.begin());  // only recent frames matter
    } else if (r == XR_SUCCESS) {
        state->viewStateFlags = 0;
    }
    return r;
}

// ---------------------------------------------------------------------------------------------
// Swapchains.

XrResult xrEnumerateSwapchainFormats(XrSession session, uint32_t capacity, uint32_t* count, int64_t* formats) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    const auto& f = s->instance->formats;
    return two_call(capacity, count, formats, static_cast<uint32_t>(f.size()),
                    [&f](int64_t& out, uint32_t i) { out = f[i]; });
}

XrResult xrCreateSwapchain(XrSession session, const XrSwapchainCreateInfo* info, XrSwapchain* swapchain) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (info == nullptr || swapchain == nullptr || info->type != XR_TYPE_SWAPCHAIN_CREATE_INFO)
        return XR_ERROR_VALIDATION_FAILURE;
    const auto& formats = s->instance->formats;
    if (std::find(formats.begin(), formats.end(), info->format) == formats.end())
        return XR_ERROR_SWAPCHAIN_FORMAT_UNSUPPORTED;
    if (info->createFlags != 0) return XR_ERROR_FEATURE_UNSUPPORTED;  // no protected or static images
    if (info->width == 0 || info->height == 0 || info->mipCount == 0 || info->faceCount == 0 ||
        info->arraySize == 0 || info->sampleCount == 0)
        return XR_ERROR_VALIDATION_FAILURE;
    if (info->width > kMaxImageSize || info->height > kMaxImageSize) return XR_ERROR_SIZE_INSUFFICIENT;
    if (info->sampleCount != 1 || info->faceCount != 1 || info->arraySize != 1) return XR_ERROR_FEATURE_UNSUPPORTED;
    if (!g_gl.usable()) {
        warn("xrCreateSwapchain needs the session's OpenGL context current on the calling thread");
        return XR_ERROR_GRAPHICS_DEVICE_INVALID;
    }
    const GlFormat* fmt = find_format(info->format);
    auto* sc = new XrSwapchain_T();
    sc->session = s;
    sc->format = fmt;
    sc->width = info->width;
    sc->height = info->height;
    sc->mips = info->mipCount;
    {
        GlStateGuard guard;
        g_gl.drain_errors();
        g_gl.GenTextures(kImagesPerSwapchain, sc->textures.data());
        for (GLuint tex : sc->textures) {
            g_gl.BindTexture(GL_TEXTURE_2D, tex);
            for (uint32_t level = 0; level < sc->mips; ++level) {
                GLsizei w = std::max<GLsizei>(1, static_cast<GLsizei>(sc->width >> level));
                GLsizei h = std::max<GLsizei>(1, static_cast<GLsizei>(sc->height >> level));
                g_gl.TexImage2D(GL_TEXTURE_2D, static_cast<GLint>(level), static_cast<GLint>(fmt->internal), w, h, 0,
                                fmt->format, fmt->type, nullptr);
            }
            // A complete texture whatever the application samples it with.
            g_gl.TexParameteri(GL_TEXTURE_2D, kGL_TEXTURE_MAX_LEVEL, static_cast<GLint>(sc->mips - 1));
            g_gl.TexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER,
                               sc->mips > 1 ? GL_LINEAR_MIPMAP_LINEAR : GL_LINEAR);
            g_gl.TexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_LINEAR);
        }
        GLenum error = g_gl.GetError();
        if (error != GL_NO_ERROR) {
            char hex[16];
            std::snprintf(hex, sizeof hex, "0x%04X", error);
            warn(std::string("OpenGL error ") + hex + " while allocating swapchain textures");
            g_gl.DeleteTextures(kImagesPerSwapchain, sc->textures.data());
            delete sc;
            return XR_ERROR_RUNTIME_FAILURE;
        }
    }
    s->swapchains.insert(sc);
    g_swapchains.live.insert(sc);
    *swapchain = reinterpret_cast<XrSwapchain>(sc);
    return XR_SUCCESS;
}

XrResult xrDestroySwapchain(XrSwapchain swapchain) {
    ENTER();
    XrSwapchain_T* sc = get(swapchain);
    if (sc == nullptr) return XR_ERROR_HANDLE_INVALID;
    destroy_swapchain(sc);
    return XR_SUCCESS;
}

XrResult xrEnumerateSwapchainImages(XrSwapchain swapchain, uint32_t capacity, uint32_t* count,
                                    XrSwapchainImageBaseHeader* images) {
    ENTER();
    XrSwapchain_T* sc = get(swapchain);
    if (sc == nullptr) return XR_ERROR_HANDLE_INVALID;
    auto* gl_images = reinterpret_cast<XrSwapchainImageOpenGLKHR*>(images);
    if (capacity >= kImagesPerSwapchain && gl_images != nullptr)
        for (uint32_t i = 0; i < kImagesPerSwapchain; ++i)
            if (gl_images[i].type != XR_TYPE_SWAPCHAIN_IMAGE_OPENGL_KHR) return XR_ERROR_VALIDATION_FAILURE;
    return two_call(capacity, count, gl_images, kImagesPerSwapchain,
                    [sc](XrSwapchainImageOpenGLKHR& img, uint32_t i) { img.image = sc->textures[i]; });
}

XrResult xrAcquireSwapchainImage(XrSwapchain swapchain, const XrSwapchainImageAcquireInfo* info, uint32_t* index) {
    ENTER();
    XrSwapchain_T* sc = get(swapchain);
    if (sc == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (index == nullptr || (info != nullptr && info->type != XR_TYPE_SWAPCHAIN_IMAGE_ACQUIRE_INFO))
        return XR_ERROR_VALIDATION_FAILURE;
    if (sc->acquired.size() == kImagesPerSwapchain) return XR_ERROR_CALL_ORDER_INVALID;  // none left
    *index = sc->next_acquire;
    sc->acquired.push_back(sc->next_acquire);
    sc->next_acquire = (sc->next_acquire + 1) % kImagesPerSwapchain;
    return XR_SUCCESS;
}

XrResult xrWaitSwapchainImage(XrSwapchain swapchain, const XrSwapchainImageWaitInfo* info) {
    ENTER();
    XrSwapchain_T* sc = get(swapchain);
    if (sc == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (info == nullptr || info->type != XR_TYPE_SWAPCHAIN_IMAGE_WAIT_INFO) return XR_ERROR_VALIDATION_FAILURE;
    // The oldest acquired image is waited on, and only once before its release.
    if (sc->acquired.empty() || sc->front_waited) return XR_ERROR_CALL_ORDER_INVALID;
    sc->front_waited = true;  // the compositor never holds images, so the wait never times out
    return XR_SUCCESS;
}

XrResult xrReleaseSwapchainImage(XrSwapchain swapchain, const XrSwapchainImageReleaseInfo* info) {
    ENTER();
    XrSwapchain_T* sc = get(swapchain);
    if (sc == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (info != nullptr && info->type != XR_TYPE_SWAPCHAIN_IMAGE_RELEASE_INFO) return XR_ERROR_VALIDATION_FAILURE;
    if (sc->acquired.empty() || !sc->front_waited) return XR_ERROR_CALL_ORDER_INVALID;
    sc->last_released = sc->acquired.front();
    sc->acquired.pop_front();
    sc->front_waited = false;
    return XR_SUCCESS;
}

// ---------------------------------------------------------------------------------------------
// Frame loop.

XrResult xrWaitFrame(XrSession session, const XrFrameWaitInfo* info, XrFrameState* state) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if ((info != nullptr && info->type != XR_TYPE_FRAME_WAIT_INFO) || state == nullptr ||
        state->type != XR_TYPE_FRAME_STATE)
        return XR_ERROR_VALIDATION_FAILURE;
    if (!s->running) return XR_ERROR_SESSION_NOT_RUNNING;
    // No real display to pace against: frames follow each other at the nominal period, which
    // keeps display times deterministic and strictly increasing.
    state->predictedDisplayPeriod = kFramePeriod;
    state->predictedDisplayTime = s->instance->start + (s->waited + 1) * kFramePeriod;
    state->shouldRender = (s->state == XR_SESSION_STATE_VISIBLE || s->state == XR_SESSION_STATE_FOCUSED);
    ++s->waited;
    s->wait_pending = true;
    return XR_SUCCESS;
}

XrResult xrBeginFrame(XrSession session, const XrFrameBeginInfo* info) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (info != nullptr && info->type != XR_TYPE_FRAME_BEGIN_INFO) return XR_ERROR_VALIDATION_FAILURE;
    if (!s->running) return XR_ERROR_SESSION_NOT_RUNNING;
    if (!s->wait_pending) return XR_ERROR_CALL_ORDER_INVALID;
    s->wait_pending = false;
    if (s->frame_begun) return XR_FRAME_DISCARDED;  // the previous begun frame is dropped
    s->frame_begun = true;
    return XR_SUCCESS;
}

std::string pose_fov_text(const XrPosef& p, const XrFovf& f) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g", p.orientation.x,
                  p.orientation.y, p.orientation.z, p.orientation.w, p.position.x, p.position.y, p.position.z,
                  f.angleLeft, f.angleRight, f.angleUp, f.angleDown);
    return buf;
}
std::string sub_image_text(const XrSwapchainSubImage& sub, const XrSwapchain_T* sc) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%d %d %d %d %lld 0x%04X", sub.imageRect.offset.x, sub.imageRect.offset.y,
                  sub.imageRect.extent.width, sub.imageRect.extent.height, static_cast<long long>(sc->last_released),
                  sc->format->internal);
    return buf;
}

// The swapchain a sub-image names must belong to the session, have a released image, and the
// rectangle must lie inside it.
XrResult check_sub_image(XrSession_T* s, const XrSwapchainSubImage& sub) {
    XrSwapchain_T* sc = get(sub.swapchain);
    if (sc == nullptr || sc->session != s) return XR_ERROR_HANDLE_INVALID;
    if (sc->last_released < 0) return XR_ERROR_LAYER_INVALID;
    const XrRect2Di& r = sub.imageRect;
    if (r.offset.x < 0 || r.offset.y < 0 || r.extent.width <= 0 || r.extent.height <= 0 ||
        static_cast<int64_t>(r.offset.x) + r.extent.width > sc->width ||
        static_cast<int64_t>(r.offset.y) + r.extent.height > sc->height)
        return XR_ERROR_SWAPCHAIN_RECT_INVALID;
    if (sub.imageArrayIndex != 0) return XR_ERROR_VALIDATION_FAILURE;
    return XR_SUCCESS;
}

// Reads the released image of a colour sub-image back as RGBA8, rows bottom first as OpenGL
// stores them, cropped to the rectangle.
bool read_back(const XrSwapchainSubImage& sub, const std::string& path) {
    XrSwapchain_T* sc = get(sub.swapchain);
    if (sc->format->depth || !g_gl.usable()) return false;
    std::vector<unsigned char> full(static_cast<size_t>(sc->width) * sc->height * 4);
    {
        GlStateGuard guard;
        g_gl.drain_errors();
        g_gl.BindTexture(GL_TEXTURE_2D, sc->textures[static_cast<size_t>(sc->last_released)]);
        g_gl.GetTexImage(GL_TEXTURE_2D, 0, GL_RGBA, GL_UNSIGNED_BYTE, full.data());
        if (g_gl.GetError() != GL_NO_ERROR) return false;
    }
    FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) return false;
    const XrRect2Di& r = sub.imageRect;
    for (int32_t row = r.offset.y; row < r.offset.y + r.extent.height; ++row)
        std::fwrite(&full[(static_cast<size_t>(row) * sc->width + r.offset.x) * 4], 4,
                    static_cast<size_t>(r.extent.width), f);
    std::fclose(f);
    return true;
}

void record_frame(XrSession_T* s, const XrFrameEndInfo* info) {
    const std::string& dir = s->instance->record_dir;
    if (dir.empty()) return;
    int64_t k = s->records++;
    std::string base = dir + "/frame_" + std::to_string(k);
    FILE* f = std::fopen((base + ".txt").c_str(), "w");
    if (f == nullptr) {
        warn("cannot write " + base + ".txt");
        return;
    }
    std::fprintf(f, "display_time %lld\n", static_cast<long long>(info->displayTime));
    auto located = s->located.find(info->displayTime);
    if (located != s->located.end())
        for (size_t eye = 0; eye < located->second.size(); ++eye)
            std::fprintf(f, "located %zu %s\n", eye,
                         pose_fov_text(located->second[eye].pose, located->second[eye].fov).c_str());
    bool first_projection = true;
    for (uint32_t i = 0; i < info->layerCount; ++i) {
        if (info->layers[i]->type != XR_TYPE_COMPOSITION_LAYER_PROJECTION) continue;
        auto* layer = reinterpret_cast<const XrCompositionLayerProjection*>(info->layers[i]);
        for (uint32_t eye = 0; eye < layer->viewCount; ++eye) {
            const XrCompositionLayerProjectionView& v = layer->views[eye];
            std::fprintf(f, "layer %u %s %s\n", eye, pose_fov_text(v.pose, v.fov).c_str(),
                         sub_image_text(v.subImage, get(v.subImage.swapchain)).c_str());
            auto* depth = reinterpret_cast<const XrCompositionLayerDepthInfoKHR*>(
                find_in_chain(v.next, XR_TYPE_COMPOSITION_LAYER_DEPTH_INFO_KHR));
            if (depth)
                std::fprintf(f, "depth %u %s %.9g %.9g %.9g %.9g\n", eye,
                             sub_image_text(depth->subImage, get(depth->subImage.swapchain)).c_str(), depth->minDepth,
                             depth->maxDepth, depth->nearZ, depth->farZ);
            // Pixels of the first projection layer only: that is the scene an HMD would show.
            if (first_projection)
                read_back(v.subImage, base + "_eye_" + std::to_string(eye) + ".rgba");
        }
        first_projection = false;
    }
    std::fclose(f);
}

XrResult xrEndFrame(XrSession session, const XrFrameEndInfo* info) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (info == nullptr || info->type != XR_TYPE_FRAME_END_INFO) return XR_ERROR_VALIDATION_FAILURE;
    if (!s->running) return XR_ERROR_SESSION_NOT_RUNNING;
    if (!s->frame_begun) return XR_ERROR_CALL_ORDER_INVALID;
    if (info->displayTime <= 0) return XR_ERROR_TIME_INVALID;
    if (info->environmentBlendMode != XR_ENVIRONMENT_BLEND_MODE_OPAQUE)
        return XR_ERROR_ENVIRONMENT_BLEND_MODE_UNSUPPORTED;
    if (info->layerCount > kMaxLayers) return XR_ERROR_LAYER_LIMIT_EXCEEDED;
    if (info->layerCount > 0 && info->layers == nullptr) return XR_ERROR_VALIDATION_FAILURE;
    for (uint32_t i = 0; i < info->layerCount; ++i) {
        const XrCompositionLayerBaseHeader* base = info->layers[i];
        if (base == nullptr) return XR_ERROR_LAYER_INVALID;
        if (base->type != XR_TYPE_COMPOSITION_LAYER_PROJECTION) return XR_ERROR_LAYER_INVALID;  // only kind offered
        auto* layer = reinterpret_cast<const XrCompositionLayerProjection*>(base);
        XrSpace_T* space = get(layer->space);
        if (space == nullptr || space->session != s) return XR_ERROR_HANDLE_INVALID;
        if (layer->viewCount != 2 || layer->views == nullptr) return XR_ERROR_VALIDATION_FAILURE;
        for (uint32_t eye = 0; eye < 2; ++eye) {
            const XrCompositionLayerProjectionView& v = layer->views[eye];
            if (v.type != XR_TYPE_COMPOSITION_LAYER_PROJECTION_VIEW) return XR_ERROR_VALIDATION_FAILURE;
            if (!unit_quaternion(v.pose.orientation)) return XR_ERROR_POSE_INVALID;
            if (XrResult r = check_sub_image(s, v.subImage); r != XR_SUCCESS) return r;
            auto* depth = reinterpret_cast<const XrCompositionLayerDepthInfoKHR*>(
                find_in_chain(v.next, XR_TYPE_COMPOSITION_LAYER_DEPTH_INFO_KHR));
            if (depth != nullptr) {
                if (!s->instance->depth_enabled) return XR_ERROR_VALIDATION_FAILURE;
                if (XrResult r = check_sub_image(s, depth->subImage); r != XR_SUCCESS) return r;
                if (!(depth->minDepth >= 0.0f && depth->minDepth <= depth->maxDepth && depth->maxDepth <= 1.0f) ||
                    depth->nearZ == depth->farZ)
                    return XR_ERROR_VALIDATION_FAILURE;
            }
        }
    }
    record_frame(s, info);
    s->frame_begun = false;
    s->located.erase(info->displayTime);
    ++s->ended;
    if (s->instance->script.stop_after > 0 && s->ended == s->instance->script.stop_after) queue_stopping(s);
    return XR_SUCCESS;
}

// ---------------------------------------------------------------------------------------------
// Actions. No controllers exist: everything validates and reports inactive inputs.

XrResult xrCreateActionSet(XrInstance instance, const XrActionSetCreateInfo* info, XrActionSet* actionSet) {
    ENTER();
    XrInstance_T* inst = get(instance);
    if (inst == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (info == nullptr || actionSet == nullptr || info->type != XR_TYPE_ACTION_SET_CREATE_INFO)
        return XR_ERROR_VALIDATION_FAILURE;
    if (!well_formed_name(info->actionSetName, XR_MAX_ACTION_SET_NAME_SIZE)) return XR_ERROR_PATH_FORMAT_INVALID;
    if (strnlen(info->localizedActionSetName, XR_MAX_LOCALIZED_ACTION_SET_NAME_SIZE) == 0)
        return XR_ERROR_LOCALIZED_NAME_INVALID;
    for (XrActionSet_T* other : inst->action_sets)
        if (other->name == info->actionSetName) return XR_ERROR_NAME_DUPLICATED;
    auto* set = new XrActionSet_T{inst, info->actionSetName, {}, false};
    inst->action_sets.insert(set);
    g_action_sets.live.insert(set);
    *actionSet = reinterpret_cast<XrActionSet>(set);
    return XR_SUCCESS;
}

XrResult xrDestroyActionSet(XrActionSet actionSet) {
    ENTER();
    XrActionSet_T* set = get(actionSet);
    if (set == nullptr) return XR_ERROR_HANDLE_INVALID;
    destroy_action_set(set);
    return XR_SUCCESS;
}

bool top_level_user_path(const std::string& p) {
    static const std::set<std::string> kPaths = {"/user/hand/left", "/user/hand/right", "/user/head",
                                                  "/user/gamepad", "/user/treadmill", "/user/eyes_ext"};
    return kPaths.count(p) != 0;
}

XrResult xrCreateAction(XrActionSet actionSet, const XrActionCreateInfo* info, XrAction* action) {
    ENTER();
    XrActionSet_T* set = get(actionSet);
    if (set == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (info == nullptr || action == nullptr || info->type != XR_TYPE_ACTION_CREATE_INFO)
        return XR_ERROR_VALIDATION_FAILURE;
    if (set->attached) return XR_ERROR_ACTIONSETS_ALREADY_ATTACHED;
    switch (info->actionType) {
        case XR_ACTION_TYPE_BOOLEAN_INPUT:
        case XR_ACTION_TYPE_FLOAT_INPUT:
        case XR_ACTION_TYPE_VECTOR2F_INPUT:
        case XR_ACTION_TYPE_POSE_INPUT:
        case XR_ACTION_TYPE_VIBRATION_OUTPUT:
            break;
        default:
            return XR_ERROR_VALIDATION_FAILURE;
    }
    if (!well_formed_name(info->actionName, XR_MAX_ACTION_NAME_SIZE)) return XR_ERROR_PATH_FORMAT_INVALID;
    if (strnlen(info->localizedActionName, XR_MAX_LOCALIZED_ACTION_NAME_SIZE) == 0)
        return XR_ERROR_LOCALIZED_NAME_INVALID;
    for (XrAction_T* other : set->actions)
        if (other->name == info->actionName) return XR_ERROR_NAME_DUPLICATED;
    std::vector<XrPath> subactions;
    for (uint32_t i = 0; i < info->countSubactionPaths; ++i) {
        XrPath p = info->subactionPaths[i];
        if (!valid_path(set->instance, p)) return XR_ERROR_PATH_INVALID;
        if (!top_level_user_path(set->instance->paths[p]) ||
            std::find(subactions.begin(), subactions.end(), p) != subactions.end())
            return XR_ERROR_PATH_UNSUPPORTED;
        subactions.push_back(p);
    }
    auto* a = new XrAction_T{set, info->actionName, info->actionType, subactions};
    set->actions.insert(a);
    g_actions.live.insert(a);
    *action = reinterpret_cast<XrAction>(a);
    return XR_SUCCESS;
}

XrResult xrDestroyAction(XrAction action) {
    ENTER();
    XrAction_T* a = get(action);
    if (a == nullptr) return XR_ERROR_HANDLE_INVALID;
    destroy_action(a);
    return XR_SUCCESS;
}

XrResult xrSuggestInteractionProfileBindings(XrInstance instance,
                                             const XrInteractionProfileSuggestedBinding* suggested) {
    ENTER();
    XrInstance_T* inst = get(instance);
    if (inst == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (suggested == nullptr || suggested->type != XR_TYPE_INTERACTION_PROFILE_SUGGESTED_BINDING ||
        suggested->countSuggestedBindings == 0 || suggested->suggestedBindings == nullptr)
        return XR_ERROR_VALIDATION_FAILURE;
    if (!valid_path(inst, suggested->interactionProfile)) return XR_ERROR_PATH_INVALID;
    const std::string& profile = inst->paths[suggested->interactionProfile];
    if (profile.rfind("/interaction_profiles/", 0) != 0) return XR_ERROR_PATH_UNSUPPORTED;
    // The eye gaze profile exists only with its extension, and has one input: the gaze pose.
    const bool gaze_profile = profile == kGazeProfile;
    if (gaze_profile && !inst->gaze_enabled) return XR_ERROR_PATH_UNSUPPORTED;
    for (uint32_t i = 0; i < suggested->countSuggestedBindings; ++i) {
        const XrActionSuggestedBinding& b = suggested->suggestedBindings[i];
        XrAction_T* a = get(b.action);
        if (a == nullptr || a->set->instance != inst) return XR_ERROR_HANDLE_INVALID;
        if (a->set->attached) return XR_ERROR_ACTIONSETS_ALREADY_ATTACHED;
        if (!valid_path(inst, b.binding)) return XR_ERROR_PATH_INVALID;
        if (inst->paths[b.binding].rfind("/user/", 0) != 0) return XR_ERROR_PATH_UNSUPPORTED;
        if (gaze_profile && inst->paths[b.binding] != kGazePose) return XR_ERROR_PATH_UNSUPPORTED;
    }
    if (gaze_profile)  // the spec's rule: a later suggestion for a profile replaces the earlier one
        for (uint32_t i = 0; i < suggested->countSuggestedBindings; ++i) {
            XrAction_T* a = get(suggested->suggestedBindings[i].action);
            a->gaze_bound = a->type == XR_ACTION_TYPE_POSE_INPUT;
        }
    return XR_SUCCESS;
}

XrResult xrAttachSessionActionSets(XrSession session, const XrSessionActionSetsAttachInfo* info) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (info == nullptr || info->type != XR_TYPE_SESSION_ACTION_SETS_ATTACH_INFO || info->countActionSets == 0 ||
        info->actionSets == nullptr)
        return XR_ERROR_VALIDATION_FAILURE;
    if (!s->attached.empty()) return XR_ERROR_ACTIONSETS_ALREADY_ATTACHED;
    std::set<XrActionSet_T*> sets;
    for (uint32_t i = 0; i < info->countActionSets; ++i) {
        XrActionSet_T* set = get(info->actionSets[i]);
        if (set == nullptr || set->instance != s->instance) return XR_ERROR_HANDLE_INVALID;
        sets.insert(set);
    }
    for (XrActionSet_T* set : sets) set->attached = true;
    s->attached = sets;
    return XR_SUCCESS;
}

XrResult xrGetCurrentInteractionProfile(XrSession session, XrPath topLevelUserPath,
                                        XrInteractionProfileState* profile) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (profile == nullptr || profile->type != XR_TYPE_INTERACTION_PROFILE_STATE) return XR_ERROR_VALIDATION_FAILURE;
    if (s->attached.empty()) return XR_ERROR_ACTIONSET_NOT_ATTACHED;
    if (!valid_path(s->instance, topLevelUserPath)) return XR_ERROR_PATH_INVALID;
    if (!top_level_user_path(s->instance->paths[topLevelUserPath])) return XR_ERROR_PATH_UNSUPPORTED;
    profile->interactionProfile = XR_NULL_PATH;  // nothing is connected
    return XR_SUCCESS;
}

// Common checks of xrGetActionState*: a live action of the right type, attached to the session,
// asked about one of its subaction paths.
XrResult check_action_query(XrSession_T* s, const XrActionStateGetInfo* info, XrActionType type) {
    if (info == nullptr || info->type != XR_TYPE_ACTION_STATE_GET_INFO) return XR_ERROR_VALIDATION_FAILURE;
    XrAction_T* a = get(info->action);
    if (a == nullptr || a->set->instance != s->instance) return XR_ERROR_HANDLE_INVALID;
    if (!s->attached.count(a->set)) return XR_ERROR_ACTIONSET_NOT_ATTACHED;
    if (a->type != type) return XR_ERROR_ACTION_TYPE_MISMATCH;
    if (info->subactionPath != XR_NULL_PATH) {
        if (!valid_path(s->instance, info->subactionPath)) return XR_ERROR_PATH_INVALID;
        if (std::find(a->subaction_paths.begin(), a->subaction_paths.end(), info->subactionPath) ==
            a->subaction_paths.end())
            return XR_ERROR_PATH_UNSUPPORTED;
    }
    return XR_SUCCESS;
}

XrResult xrGetActionStateBoolean(XrSession session, const XrActionStateGetInfo* info, XrActionStateBoolean* state) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (state == nullptr || state->type != XR_TYPE_ACTION_STATE_BOOLEAN) return XR_ERROR_VALIDATION_FAILURE;
    if (XrResult r = check_action_query(s, info, XR_ACTION_TYPE_BOOLEAN_INPUT); r != XR_SUCCESS) return r;
    state->currentState = XR_FALSE;
    state->changedSinceLastSync = XR_FALSE;
    state->lastChangeTime = 0;
    state->isActive = XR_FALSE;
    return XR_SUCCESS;
}

XrResult xrGetActionStateFloat(XrSession session, const XrActionStateGetInfo* info, XrActionStateFloat* state) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (state == nullptr || state->type != XR_TYPE_ACTION_STATE_FLOAT) return XR_ERROR_VALIDATION_FAILURE;
    if (XrResult r = check_action_query(s, info, XR_ACTION_TYPE_FLOAT_INPUT); r != XR_SUCCESS) return r;
    state->currentState = 0.0f;
    state->changedSinceLastSync = XR_FALSE;
    state->lastChangeTime = 0;
    state->isActive = XR_FALSE;
    return XR_SUCCESS;
}

XrResult xrGetActionStateVector2f(XrSession session, const XrActionStateGetInfo* info,
                                  XrActionStateVector2f* state) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (state == nullptr || state->type != XR_TYPE_ACTION_STATE_VECTOR2F) return XR_ERROR_VALIDATION_FAILURE;
    if (XrResult r = check_action_query(s, info, XR_ACTION_TYPE_VECTOR2F_INPUT); r != XR_SUCCESS) return r;
    state->currentState = {0.0f, 0.0f};
    state->changedSinceLastSync = XR_FALSE;
    state->lastChangeTime = 0;
    state->isActive = XR_FALSE;
    return XR_SUCCESS;
}

XrResult xrGetActionStatePose(XrSession session, const XrActionStateGetInfo* info, XrActionStatePose* state) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (state == nullptr || state->type != XR_TYPE_ACTION_STATE_POSE) return XR_ERROR_VALIDATION_FAILURE;
    if (XrResult r = check_action_query(s, info, XR_ACTION_TYPE_POSE_INPUT); r != XR_SUCCESS) return r;
    state->isActive = gaze_active(s, get(info->action)) ? XR_TRUE : XR_FALSE;
    return XR_SUCCESS;
}

XrResult xrSyncActions(XrSession session, const XrActionsSyncInfo* info) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (info == nullptr || info->type != XR_TYPE_ACTIONS_SYNC_INFO) return XR_ERROR_VALIDATION_FAILURE;
    if (info->countActiveActionSets > 0 && info->activeActionSets == nullptr) return XR_ERROR_VALIDATION_FAILURE;
    for (uint32_t i = 0; i < info->countActiveActionSets; ++i) {
        XrActionSet_T* set = get(info->activeActionSets[i].actionSet);
        if (set == nullptr || set->instance != s->instance) return XR_ERROR_HANDLE_INVALID;
        if (!s->attached.count(set)) return XR_ERROR_ACTIONSET_NOT_ATTACHED;
        XrPath p = info->activeActionSets[i].subactionPath;
        if (p != XR_NULL_PATH && !valid_path(s->instance, p)) return XR_ERROR_PATH_INVALID;
    }
    if (s->state != XR_SESSION_STATE_FOCUSED) return XR_SESSION_NOT_FOCUSED;
    return XR_SUCCESS;
}

XrResult xrEnumerateBoundSourcesForAction(XrSession session, const XrBoundSourcesForActionEnumerateInfo* info,
                                          uint32_t capacity, uint32_t* count, XrPath* sources) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (info == nullptr || info->type != XR_TYPE_BOUND_SOURCES_FOR_ACTION_ENUMERATE_INFO)
        return XR_ERROR_VALIDATION_FAILURE;
    XrAction_T* a = get(info->action);
    if (a == nullptr || a->set->instance != s->instance) return XR_ERROR_HANDLE_INVALID;
    if (!s->attached.count(a->set)) return XR_ERROR_ACTIONSET_NOT_ATTACHED;
    return two_call(capacity, count, sources, 0, [](XrPath&, uint32_t) {});
}

XrResult xrGetInputSourceLocalizedName(XrSession session, const XrInputSourceLocalizedNameGetInfo* info,
                                       uint32_t capacity, uint32_t* count, char* buffer) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (info == nullptr || info->type != XR_TYPE_INPUT_SOURCE_LOCALIZED_NAME_GET_INFO || info->whichComponents == 0)
        return XR_ERROR_VALIDATION_FAILURE;
    if (s->attached.empty()) return XR_ERROR_ACTIONSET_NOT_ATTACHED;
    if (!valid_path(s->instance, info->sourcePath)) return XR_ERROR_PATH_INVALID;
    (void)capacity;
    (void)count;
    (void)buffer;
    return XR_ERROR_PATH_UNSUPPORTED;  // no source is ever bound
}

XrResult check_haptic(XrSession_T* s, const XrHapticActionInfo* info) {
    if (info == nullptr || info->type != XR_TYPE_HAPTIC_ACTION_INFO) return XR_ERROR_VALIDATION_FAILURE;
    XrAction_T* a = get(info->action);
    if (a == nullptr || a->set->instance != s->instance) return XR_ERROR_HANDLE_INVALID;
    if (!s->attached.count(a->set)) return XR_ERROR_ACTIONSET_NOT_ATTACHED;
    if (a->type != XR_ACTION_TYPE_VIBRATION_OUTPUT) return XR_ERROR_ACTION_TYPE_MISMATCH;
    if (info->subactionPath != XR_NULL_PATH &&
        std::find(a->subaction_paths.begin(), a->subaction_paths.end(), info->subactionPath) ==
            a->subaction_paths.end())
        return valid_path(s->instance, info->subactionPath) ? XR_ERROR_PATH_UNSUPPORTED : XR_ERROR_PATH_INVALID;
    return s->state == XR_SESSION_STATE_FOCUSED ? XR_SUCCESS : XR_SESSION_NOT_FOCUSED;
}

XrResult xrApplyHapticFeedback(XrSession session, const XrHapticActionInfo* info,
                               const XrHapticBaseHeader* feedback) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    if (feedback == nullptr || feedback->type != XR_TYPE_HAPTIC_VIBRATION) return XR_ERROR_VALIDATION_FAILURE;
    return check_haptic(s, info);  // there is no actuator to drive
}

XrResult xrStopHapticFeedback(XrSession session, const XrHapticActionInfo* info) {
    ENTER();
    XrSession_T* s = get(session);
    if (s == nullptr) return XR_ERROR_HANDLE_INVALID;
    return check_haptic(s, info);
}

// ---------------------------------------------------------------------------------------------
// Dispatch. The loader does not check the pointers it gets for core functions, so every
// OpenXR 1.0 core command must resolve (tests/xr checks the table against openxr.h).

// static_cast against the PFN type proves at compile time that each signature is the spec's.
#define GSCACHE_ENTRY(name) {#name, reinterpret_cast<PFN_xrVoidFunction>(static_cast<PFN_##name>(&name))}

const std::unordered_map<std::string, PFN_xrVoidFunction>& core_functions() {
    static const std::unordered_map<std::string, PFN_xrVoidFunction> table = {
        GSCACHE_ENTRY(xrGetInstanceProcAddr),
        GSCACHE_ENTRY(xrEnumerateApiLayerProperties),
        GSCACHE_ENTRY(xrEnumerateInstanceExtensionProperties),
        GSCACHE_ENTRY(xrCreateInstance),
        GSCACHE_ENTRY(xrDestroyInstance),
        GSCACHE_ENTRY(xrGetInstanceProperties),
        GSCACHE_ENTRY(xrPollEvent),
        GSCACHE_ENTRY(xrResultToString),
        GSCACHE_ENTRY(xrStructureTypeToString),
        GSCACHE_ENTRY(xrGetSystem),
        GSCACHE_ENTRY(xrGetSystemProperties),
        GSCACHE_ENTRY(xrEnumerateEnvironmentBlendModes),
        GSCACHE_ENTRY(xrCreateSession),
        GSCACHE_ENTRY(xrDestroySession),
        GSCACHE_ENTRY(xrEnumerateReferenceSpaces),
        GSCACHE_ENTRY(xrCreateReferenceSpace),
        GSCACHE_ENTRY(xrGetReferenceSpaceBoundsRect),
        GSCACHE_ENTRY(xrCreateActionSpace),
        GSCACHE_ENTRY(xrLocateSpace),
        GSCACHE_ENTRY(xrDestroySpace),
        GSCACHE_ENTRY(xrEnumerateViewConfigurations),
        GSCACHE_ENTRY(xrGetViewConfigurationProperties),
        GSCACHE_ENTRY(xrEnumerateViewConfigurationViews),
        GSCACHE_ENTRY(xrEnumerateSwapchainFormats),
        GSCACHE_ENTRY(xrCreateSwapchain),
        GSCACHE_ENTRY(xrDestroySwapchain),
        GSCACHE_ENTRY(xrEnumerateSwapchainImages),
        GSCACHE_ENTRY(xrAcquireSwapchainImage),
        GSCACHE_ENTRY(xrWaitSwapchainImage),
        GSCACHE_ENTRY(xrReleaseSwapchainImage),
        GSCACHE_ENTRY(xrBeginSession),
        GSCACHE_ENTRY(xrEndSession),
        GSCACHE_ENTRY(xrRequestExitSession),
        GSCACHE_ENTRY(xrWaitFrame),
        GSCACHE_ENTRY(xrBeginFrame),
        GSCACHE_ENTRY(xrEndFrame),
        GSCACHE_ENTRY(xrLocateViews),
        GSCACHE_ENTRY(xrStringToPath),
        GSCACHE_ENTRY(xrPathToString),
        GSCACHE_ENTRY(xrCreateActionSet),
        GSCACHE_ENTRY(xrDestroyActionSet),
        GSCACHE_ENTRY(xrCreateAction),
        GSCACHE_ENTRY(xrDestroyAction),
        GSCACHE_ENTRY(xrSuggestInteractionProfileBindings),
        GSCACHE_ENTRY(xrAttachSessionActionSets),
        GSCACHE_ENTRY(xrGetCurrentInteractionProfile),
        GSCACHE_ENTRY(xrGetActionStateBoolean),
        GSCACHE_ENTRY(xrGetActionStateFloat),
        GSCACHE_ENTRY(xrGetActionStateVector2f),
        GSCACHE_ENTRY(xrGetActionStatePose),
        GSCACHE_ENTRY(xrSyncActions),
        GSCACHE_ENTRY(xrEnumerateBoundSourcesForAction),
        GSCACHE_ENTRY(xrGetInputSourceLocalizedName),
        GSCACHE_ENTRY(xrApplyHapticFeedback),
        GSCACHE_ENTRY(xrStopHapticFeedback),
    };
    return table;
}

// Not traced: the loader and API layers call it dozens of times while building their dispatch
// tables, which would bury the application's own calls.
XrResult xrGetInstanceProcAddr(XrInstance instance, const char* name, PFN_xrVoidFunction* function) {
    std::lock_guard<std::recursive_mutex> lock(g_mutex);
    if (function == nullptr) return XR_ERROR_VALIDATION_FAILURE;
    *function = nullptr;
    if (name == nullptr) return XR_ERROR_VALIDATION_FAILURE;
    const std::string n = name;
    const auto& table = core_functions();
    if (instance == XR_NULL_HANDLE) {
        // Only these may be asked for before an instance exists.
        if (n == "xrEnumerateInstanceExtensionProperties" || n == "xrEnumerateApiLayerProperties" ||
            n == "xrCreateInstance") {
            *function = table.at(n);
            return XR_SUCCESS;
        }
        return XR_ERROR_HANDLE_INVALID;
    }
    XrInstance_T* inst = get(instance);
    if (inst == nullptr) return XR_ERROR_HANDLE_INVALID;
    auto it = table.find(n);
    if (it != table.end()) {
        *function = it->second;
        return XR_SUCCESS;
    }
    // Extension commands exist only where the application enabled their extension.
    if (n == "xrGetOpenGLGraphicsRequirementsKHR" && inst->gl_enabled) {
        *function = reinterpret_cast<PFN_xrVoidFunction>(
            static_cast<PFN_xrGetOpenGLGraphicsRequirementsKHR>(&xrGetOpenGLGraphicsRequirementsKHR));
        return XR_SUCCESS;
    }
    return XR_ERROR_FUNCTION_UNSUPPORTED;
}

}  // namespace

// The runtime's only exported symbol.
extern "C" __attribute__((visibility("default"))) XrResult XRAPI_CALL
xrNegotiateLoaderRuntimeInterface(const XrNegotiateLoaderInfo* loaderInfo, XrNegotiateRuntimeRequest* runtimeRequest) {
    if (loaderInfo == nullptr || runtimeRequest == nullptr ||
        loaderInfo->structType != XR_LOADER_INTERFACE_STRUCT_LOADER_INFO ||
        loaderInfo->structVersion != kLoaderInfoStructVersion ||
        loaderInfo->structSize != sizeof(XrNegotiateLoaderInfo) ||
        runtimeRequest->structType != XR_LOADER_INTERFACE_STRUCT_RUNTIME_REQUEST ||
        runtimeRequest->structVersion != kRuntimeInfoStructVersion ||
        runtimeRequest->structSize != sizeof(XrNegotiateRuntimeRequest))
        return XR_ERROR_INITIALIZATION_FAILED;
    if (loaderInfo->minInterfaceVersion > kRuntimeInterfaceVersion ||
        loaderInfo->maxInterfaceVersion < kRuntimeInterfaceVersion)
        return XR_ERROR_INITIALIZATION_FAILED;
    // This runtime implements OpenXR 1.0; the loader must accept some 1.0 version.
    if (loaderInfo->maxApiVersion < XR_MAKE_VERSION(1, 0, 0) || loaderInfo->minApiVersion >= XR_MAKE_VERSION(1, 1, 0))
        return XR_ERROR_INITIALIZATION_FAILED;
    runtimeRequest->runtimeInterfaceVersion = kRuntimeInterfaceVersion;
    runtimeRequest->runtimeApiVersion = XR_CURRENT_API_VERSION;  // 1.0.x of the headers built against
    runtimeRequest->getInstanceProcAddr = &xrGetInstanceProcAddr;
    return XR_SUCCESS;
}
