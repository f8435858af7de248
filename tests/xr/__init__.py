"""Tests against gscache's own OpenXR test runtime, through Khronos' loader."""
