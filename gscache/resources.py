"""How much memory a device has free, and the pre-check of a frame's size against it."""

from __future__ import annotations

import os

import torch

from .errors import GscacheError

IMAGE_BYTES_PER_PIXEL = 20  # rgb 12 + alpha 4 + depth 4, float32
FRAME_COPIES = 3  # the images, a device-to-host copy and the caller's own arrays


def available_bytes(device: torch.device) -> int | None:
    """Free memory of ``device`` in bytes (CUDA: free device memory plus what torch's caching
    allocator holds unused; CPU: MemAvailable of /proc/meminfo), or None where it cannot be known."""
    if device.type == "cuda":
        cached_unused = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(torch.cuda.mem_get_info(device)[0]) + cached_unused
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_frame_fits(n_views: int, width: int, height: int, device: torch.device) -> None:
    """Refuse a frame whose images alone cannot fit in the device's free memory (before any
    stage allocates them), naming the size and both figures."""
    need = n_views * width * height * IMAGE_BYTES_PER_PIXEL * FRAME_COPIES
    free = available_bytes(device)
    if free is not None and need > free:
        raise GscacheError(f"resolution: {n_views} view(s) of {width}x{height} need about {need / 2**30:.1f} GiB for "
                           f"their images, but {device} has {free / 2**30:.1f} GiB free")
