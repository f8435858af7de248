"""OpenGL 3.3 core objects of the viewer: one textured-rectangle program, textures filled through
pixel buffer objects (two, used in turn, so an upload does not wait for the previous draw), and
an optional CUDA-OpenGL interop path that copies device memory into the PBO without a host round
trip. Needs a current context (glfw makes it)."""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np
import torch
from OpenGL import GL

VERTEX_SHADER = """
#version 330 core
uniform vec4 rect;      // x0, y0, x1, y1 in normalised device coordinates
out vec2 uv;
void main() {
    // Two triangles of a strip from the vertex id: no vertex buffer needed.
    vec2 corner = vec2(gl_VertexID & 1, gl_VertexID >> 1);
    uv = vec2(corner.x, 1.0 - corner.y);  // image row 0 is the top
    gl_Position = vec4(mix(rect.xy, rect.zw, corner), 0.0, 1.0);
}
"""

FRAGMENT_SHADER = """
#version 330 core
uniform sampler2D image;
in vec2 uv;
out vec4 colour;
void main() { colour = texture(image, uv); }
"""


class GLError(RuntimeError):
    """OpenGL could not do what the viewer needs (no 3.3 core context, a shader failed, ...)."""


def _compile(kind, source: str) -> int:
    shader = GL.glCreateShader(kind)
    GL.glShaderSource(shader, source)
    GL.glCompileShader(shader)
    if not GL.glGetShaderiv(shader, GL.GL_COMPILE_STATUS):
        raise GLError(f"shader compilation failed: {GL.glGetShaderInfoLog(shader).decode(errors='replace')}")
    return shader


class QuadProgram:
    """Draws a texture into a rectangle of the window."""

    def __init__(self) -> None:
        self.program = GL.glCreateProgram()
        for kind, src in ((GL.GL_VERTEX_SHADER, VERTEX_SHADER), (GL.GL_FRAGMENT_SHADER, FRAGMENT_SHADER)):
            GL.glAttachShader(self.program, _compile(kind, src))
        GL.glLinkProgram(self.program)
        if not GL.glGetProgramiv(self.program, GL.GL_LINK_STATUS):
            raise GLError(f"program link failed: {GL.glGetProgramInfoLog(self.program).decode(errors='replace')}")
        self.vao = GL.glGenVertexArrays(1)  # the core profile draws only with a VAO bound
        self.rect = GL.glGetUniformLocation(self.program, "rect")

    def draw(self, texture: int, x0: float, y0: float, x1: float, y1: float, blend: bool = False) -> None:
        GL.glUseProgram(self.program)
        GL.glBindVertexArray(self.vao)
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glBindTexture(GL.GL_TEXTURE_2D, texture)
        GL.glUniform4f(self.rect, x0, y0, x1, y1)
        if blend:
            GL.glEnable(GL.GL_BLEND)
            GL.glBlendFunc(GL.GL_SRC_ALPHA, GL.GL_ONE_MINUS_SRC_ALPHA)
        GL.glDrawArrays(GL.GL_TRIANGLE_STRIP, 0, 4)
        if blend:
            GL.glDisable(GL.GL_BLEND)


class StreamTexture:
    """A texture of H x W x C uint8 images (C = 3 or 4) streamed through two PBOs."""

    def __init__(self, channels: int = 3) -> None:
        self.channels = channels
        self.texture = GL.glGenTextures(1)
        self.pbos = list(GL.glGenBuffers(2))
        self.turn = 0
        self.shape = (0, 0)
        self.interop: CudaInterop | None = None
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.texture)
        for name, value in ((GL.GL_TEXTURE_MIN_FILTER, GL.GL_LINEAR), (GL.GL_TEXTURE_MAG_FILTER, GL.GL_NEAREST),
                            (GL.GL_TEXTURE_WRAP_S, GL.GL_CLAMP_TO_EDGE), (GL.GL_TEXTURE_WRAP_T, GL.GL_CLAMP_TO_EDGE)):
            GL.glTexParameteri(GL.GL_TEXTURE_2D, name, value)

    @property
    def _format(self):
        return GL.GL_RGB if self.channels == 3 else GL.GL_RGBA

    def _resize(self, height: int, width: int) -> None:
        if (height, width) == self.shape:
            return
        self.shape = (height, width)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.texture)
        GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_RGBA8, width, height, 0, self._format, GL.GL_UNSIGNED_BYTE, None)
        for pbo in self.pbos:
            GL.glBindBuffer(GL.GL_PIXEL_UNPACK_BUFFER, pbo)
            GL.glBufferData(GL.GL_PIXEL_UNPACK_BUFFER, height * width * self.channels, None, GL.GL_STREAM_DRAW)
        GL.glBindBuffer(GL.GL_PIXEL_UNPACK_BUFFER, 0)
        if self.interop is not None:
            self.interop.close()
            self.interop = None

    def upload(self, image: torch.Tensor) -> str:
        """Copy ``image`` [H, W, C] uint8 (any device) into the texture; returns the path taken:
        "cuda-interop" (device to PBO, no host copy) or "host" (through host memory)."""
        height, width, channels = image.shape
        if channels != self.channels or image.dtype != torch.uint8:
            raise ValueError(f"image: expected [H, W, {self.channels}] uint8, got {tuple(image.shape)} {image.dtype}")
        self._resize(height, width)
        pbo = self.pbos[self.turn]
        self.turn ^= 1
        nbytes = height * width * channels
        path = "host"
        if image.is_cuda:
            if self.interop is None:
                self.interop = CudaInterop.try_create(self.pbos)
            if self.interop is not None and self.interop.copy(pbo, image.contiguous()):
                path = "cuda-interop"
        if path == "host":
            data = image.contiguous().cpu().numpy()
            GL.glBindBuffer(GL.GL_PIXEL_UNPACK_BUFFER, pbo)
            GL.glBufferData(GL.GL_PIXEL_UNPACK_BUFFER, nbytes, None, GL.GL_STREAM_DRAW)  # orphan the old storage
            ptr = GL.glMapBufferRange(GL.GL_PIXEL_UNPACK_BUFFER, 0, nbytes,
                                      GL.GL_MAP_WRITE_BIT | GL.GL_MAP_INVALIDATE_BUFFER_BIT)
            if not ptr:
                raise GLError("glMapBufferRange returned NULL for the pixel buffer")
            ctypes.memmove(ptr, data.ctypes.data, nbytes)
            GL.glUnmapBuffer(GL.GL_PIXEL_UNPACK_BUFFER)
        GL.glBindBuffer(GL.GL_PIXEL_UNPACK_BUFFER, pbo)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.texture)
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
        GL.glTexSubImage2D(GL.GL_TEXTURE_2D, 0, 0, 0, width, height, self._format, GL.GL_UNSIGNED_BYTE,
                           ctypes.c_void_p(0))
        GL.glBindBuffer(GL.GL_PIXEL_UNPACK_BUFFER, 0)
        return path


class CudaInterop:
    """The PBOs registered with the CUDA runtime (cudaGraphicsGLRegisterBuffer), so a CUDA image
    is copied device to device into them. Created only when libcudart and a GL context on the
    same GPU allow it; any failure means the host path is used instead."""

    WRITE_DISCARD = 2  # cudaGraphicsRegisterFlagsWriteDiscard
    DEVICE_TO_DEVICE = 3  # cudaMemcpyDeviceToDevice

    def __init__(self, lib: ctypes.CDLL, resources: dict[int, ctypes.c_void_p]) -> None:
        self.lib, self.resources = lib, resources

    @staticmethod
    def _runtime() -> ctypes.CDLL | None:
        import glob
        import os

        # The runtime torch itself loaded: its own lib folder, or the nvidia-cuda-runtime wheel.
        torch_dir = os.path.dirname(torch.__file__)
        candidates = (glob.glob(os.path.join(torch_dir, "lib", "libcudart*.so*"))
                      + glob.glob(os.path.join(torch_dir, "..", "nvidia", "cuda_runtime", "lib", "libcudart.so*")))
        found = ctypes.util.find_library("cudart")
        for name in candidates + ([found] if found else []):
            try:
                return ctypes.CDLL(name)
            except OSError:
                continue
        return None

    @classmethod
    def try_create(cls, pbos: list[int]) -> "CudaInterop | None":
        lib = cls._runtime()
        if lib is None:
            return None
        resources = {}
        for pbo in pbos:
            res = ctypes.c_void_p()
            if lib.cudaGraphicsGLRegisterBuffer(ctypes.byref(res), ctypes.c_uint(int(pbo)),
                                                ctypes.c_uint(cls.WRITE_DISCARD)) != 0:
                return None
            resources[int(pbo)] = res
        return cls(lib, resources)

    def copy(self, pbo: int, image: torch.Tensor) -> bool:
        """Copy the CUDA tensor into ``pbo``; False (nothing copied) if CUDA refuses."""
        res = self.resources[int(pbo)]
        stream = ctypes.c_void_p(torch.cuda.current_stream(image.device).cuda_stream)
        if self.lib.cudaGraphicsMapResources(1, ctypes.byref(res), stream) != 0:
            return False
        try:
            ptr, size = ctypes.c_void_p(), ctypes.c_size_t()
            if self.lib.cudaGraphicsResourceGetMappedPointer(ctypes.byref(ptr), ctypes.byref(size), res) != 0:
                return False
            nbytes = image.numel()
            if size.value < nbytes:
                return False
            ok = self.lib.cudaMemcpyAsync(ptr, ctypes.c_void_p(image.data_ptr()), ctypes.c_size_t(nbytes),
                                          self.DEVICE_TO_DEVICE, stream) == 0
        finally:
            self.lib.cudaGraphicsUnmapResources(1, ctypes.byref(res), stream)
        return ok

    def close(self) -> None:
        for res in self.resources.values():
            self.lib.cudaGraphicsUnregisterResource(res)
        self.resources = {}


def read_framebuffer(width: int, height: int) -> np.ndarray:
    """The default framebuffer's pixels, [H, W, 3] uint8, row 0 at the top."""
    GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
    raw = GL.glReadPixels(0, 0, width, height, GL.GL_RGB, GL.GL_UNSIGNED_BYTE)
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)[::-1].copy()
