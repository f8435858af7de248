"""The offline FPS benchmark: ``gscache bench``.

It renders a stereo trajectory with each configuration to compare, times every frame after a
warm-up, measures peak memory and machine-independent work, compares sampled frames with the
exact reference render, and writes a table, a JSON report and a plot.
"""

from .metrics import max_abs_error, psnr, ssim
from .runner import BenchSettings, ConfigResult, ladder, run_bench
from .stats import percentile, summarize

__all__ = ["psnr", "ssim", "max_abs_error", "percentile", "summarize", "BenchSettings", "ConfigResult", "ladder",
           "run_bench"]
