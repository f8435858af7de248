"""Multi-device rendering: a frame's tiles spread over several devices (GPUs of this machine, CPU
worker processes, or ranks of a torch.distributed group), planned from the tile costs and each
device's measured throughput, with an elastic number of devices and recovery from failures.
The renderers are built by a factory the caller injects (gscache.api.open_renderer passes
gscache.Renderer), so this package never imports the renderer."""

from .devices import DeviceFailed, LocalDevice, ProcessDevice
from .elastic import ElasticController
from .plan import Band, TilePlan, plan_tiles, row_costs
from .scheduler import DeviceStats, MultiDeviceRenderer, ScheduleConfig, ScheduleStats, parse_devices

__all__ = ["Band", "TilePlan", "plan_tiles", "row_costs", "ElasticController", "MultiDeviceRenderer",
           "ScheduleConfig", "ScheduleStats", "DeviceStats", "parse_devices", "DeviceFailed", "LocalDevice",
           "ProcessDevice"]
