"""Cameras and stereo rigs, and the one place where gscache's conventions are written down.

Conventions (used by every stage, backend and loader):

* **Axes.** World and camera space follow OpenCV/COLMAP: camera x points right, y down, z forward
  (into the scene). Right-handed. Distances are in metres where the scene has a metric scale.
* **Transforms** are named ``T_<to>_<from>``: ``T_cam_world`` maps world points into the camera
  frame (a "view matrix"), ``T_world_head`` places the head in the world. All are 4x4 rigid
  transforms stored as float64 tensors on the CPU; stages receive float32 copies on their device.
* **Pixels.** Intrinsics map camera points to continuous pixel coordinates
  ``u = fx * x / z + cx``, ``v = fy * y / z + cy``; pixel (i, j) covers ``[i, i+1) x [j, j+1)``,
  so its centre is at ``(i + 0.5, j + 0.5)``.
* **Stereo rig.** A head pose plus an interpupillary distance (IPD, default 0.063 m). The head
  frame uses the camera axes. The left eye sits at ``-IPD/2`` and the right eye at ``+IPD/2``
  along the head's x axis; eye index 0 is left, 1 is right. Eyes are parallel (same rotation as
  the head) unless ``convergence_m`` is set, in which case each eye turns inwards about its y axis
  to look at the point ``convergence_m`` ahead of the head, or ``eye_poses`` gives each eye's
  pose on the head as a headset's runtime reports it (OpenXR: viewer/xr_views.py converts). With
  parallel eyes a point at depth z appears ``fx * IPD / z`` pixels further left in the right
  image than in the left one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .errors import GscacheError

MAX_IMAGE_SIDE_PX = 16384


def _as_pose(value, name: str) -> Tensor:
    """Check a 4x4 rigid transform and return it as a float64 CPU tensor."""
    try:
        pose = torch.as_tensor(value, dtype=torch.float64).detach().cpu().clone()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise GscacheError(f"{name}: expected a 4x4 matrix, got {type(value).__name__}") from exc
    if pose.shape != (4, 4):
        raise GscacheError(f"{name}: expected shape (4, 4), got {tuple(pose.shape)}")
    if not torch.isfinite(pose).all():
        raise GscacheError(f"{name}: contains NaN or Inf")
    if not torch.allclose(pose[3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)):
        raise GscacheError(f"{name}: last row must be [0, 0, 0, 1], got {pose[3].tolist()}")
    rot = pose[:3, :3]
    if not torch.allclose(rot @ rot.T, torch.eye(3, dtype=torch.float64), atol=1e-4):
        raise GscacheError(f"{name}: the 3x3 block is not a rotation (R R^T != I)")
    if torch.linalg.det(rot) < 0:
        raise GscacheError(f"{name}: the 3x3 block is a reflection (det < 0), expected a rotation")
    return pose


def rigid_inverse(T: Tensor) -> Tensor:
    """Inverse of a 4x4 rigid transform (T_a_b -> T_b_a). Shapes [..., 4, 4]."""
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    out = torch.zeros_like(T)
    out[..., :3, :3] = R.transpose(-1, -2)
    out[..., :3, 3:] = -R.transpose(-1, -2) @ t
    out[..., 3, 3] = 1.0
    return out


def look_at(eye, target, up=(0.0, -1.0, 0.0)) -> Tensor:
    """T_world_cam of an OpenCV camera at ``eye`` looking at ``target``.

    Args:
        eye: camera centre in world coordinates, [3].
        target: point the camera looks at, [3].
        up: world direction that should appear upwards in the image. The default (0, -1, 0)
            suits OpenCV/COLMAP worlds, where y points down.

    Returns:
        T_world_cam, [4, 4] float64.
    """
    eye = torch.as_tensor(eye, dtype=torch.float64)
    target = torch.as_tensor(target, dtype=torch.float64)
    up = torch.as_tensor(up, dtype=torch.float64)
    z = target - eye
    if z.norm() < 1e-12:
        raise GscacheError("look_at: eye and target coincide")
    z = z / z.norm()
    # Camera y points down in the image, so it is the opposite of the world's up direction.
    x = torch.linalg.cross(-up, z)
    if x.norm() < 1e-9:  # looking straight along the up axis: pick any perpendicular
        alt = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
        if abs(float(z @ alt)) > 0.9:
            alt = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
        x = torch.linalg.cross(z, alt)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    T = torch.eye(4, dtype=torch.float64)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T


@dataclass(frozen=True, slots=True)
class Intrinsics:
    """Pinhole intrinsics and resolution of one image (pixels)."""

    fx: float
    """Focal length along x, pixels (> 0)."""
    fy: float
    """Focal length along y, pixels (> 0)."""
    cx: float
    """Principal point x, continuous pixel coordinates (centre of the image is width / 2)."""
    cy: float
    """Principal point y."""
    width: int
    """Image width in pixels, 1..16384."""
    height: int
    """Image height in pixels, 1..16384."""

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_IMAGE_SIDE_PX:
                raise GscacheError(
                    f"Intrinsics.{name}: expected an integer in [1, {MAX_IMAGE_SIDE_PX}], got {v!r}"
                )
        for name in ("fx", "fy", "cx", "cy"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise GscacheError(f"Intrinsics.{name}: expected a finite number, got {v!r}")
        for name in ("fx", "fy"):
            if getattr(self, name) <= 0:
                raise GscacheError(f"Intrinsics.{name}: expected > 0, got {getattr(self, name)!r}")

    @staticmethod
    def from_fov(fov_y_deg: float, width: int, height: int) -> "Intrinsics":
        """Square pixels, principal point at the image centre, vertical field of view in degrees."""
        if not 1.0 <= fov_y_deg <= 179.0:
            raise GscacheError(f"fov_y_deg: expected a value in [1, 179] degrees, got {fov_y_deg!r}")
        f = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
        return Intrinsics(f, f, width / 2, height / 2, width, height)

    @property
    def K(self) -> Tensor:
        """The 3x3 intrinsic matrix, float64."""
        return torch.tensor(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=torch.float64
        )

    def scaled(self, factor: float) -> "Intrinsics":
        """The same field of view at ``factor`` times the resolution."""
        w = max(1, round(self.width * factor))
        h = max(1, round(self.height * factor))
        sx, sy = w / self.width, h / self.height
        return Intrinsics(self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, w, h)


def _check_clip(near_m: float, far_m: float, owner: str) -> None:
    if not (isinstance(near_m, (int, float)) and math.isfinite(near_m) and near_m > 0):
        raise GscacheError(f"{owner}.near_m: expected a finite number > 0, got {near_m!r}")
    if not (isinstance(far_m, (int, float)) and far_m > near_m):
        raise GscacheError(f"{owner}.far_m: expected a number > near_m ({near_m}), got {far_m!r}")


@dataclass(frozen=True, slots=True)
class Camera:
    """One pinhole view: intrinsics, pose and clip range (see the module docstring)."""

    intrinsics: Intrinsics
    """Focal lengths, principal point and resolution."""
    T_cam_world: Tensor
    """World-to-camera rigid transform, [4, 4] float64 (OpenCV axes)."""
    near_m: float = 0.01
    """Gaussians whose centre is at depth <= near_m are not drawn."""
    far_m: float = 1e4
    """Gaussians whose centre is at depth >= far_m are not drawn."""

    def __post_init__(self) -> None:
        if not isinstance(self.intrinsics, Intrinsics):
            raise GscacheError(
                f"Camera.intrinsics: expected an Intrinsics, got {type(self.intrinsics).__name__}"
            )
        object.__setattr__(self, "T_cam_world", _as_pose(self.T_cam_world, "Camera.T_cam_world"))
        _check_clip(self.near_m, self.far_m, "Camera")

    @staticmethod
    def from_pose(T_world_cam, intrinsics: Intrinsics, near_m: float = 0.01, far_m: float = 1e4) -> "Camera":
        """A camera placed in the world by T_world_cam (camera-to-world)."""
        T = _as_pose(T_world_cam, "T_world_cam")
        return Camera(intrinsics, rigid_inverse(T), near_m, far_m)

    @property
    def T_world_cam(self) -> Tensor:
        return rigid_inverse(self.T_cam_world)

    @property
    def position(self) -> Tensor:
        """Camera centre in world coordinates, [3] float64."""
        return self.T_world_cam[:3, 3]

    @property
    def width(self) -> int:
        return self.intrinsics.width

    @property
    def height(self) -> int:
        return self.intrinsics.height


@dataclass(frozen=True, slots=True)
class StereoRig:
    """Two eyes on a head: the head pose, IPD and per-eye intrinsics (see the module docstring).

    Both eyes must share one resolution (the renderer produces [E, H, W] images); their
    intrinsics may differ, e.g. the off-centre principal points of a headset's canted displays.
    """

    T_world_head: Tensor
    """Head-to-world rigid transform, [4, 4] float64; head axes as camera axes."""
    left: Intrinsics
    """Intrinsics of the left eye (eye 0)."""
    right: Intrinsics
    """Intrinsics of the right eye (eye 1)."""
    ipd_m: float = 0.063
    """Interpupillary distance in metres (>= 0)."""
    near_m: float = 0.01
    """Near clip depth, metres."""
    far_m: float = 1e4
    """Far clip depth, metres."""
    convergence_m: float | None = None
    """None for parallel eyes; else the distance ahead of the head at which the eyes converge."""
    eye_poses: tuple[Tensor, Tensor] | None = None
    """None: the eyes from ``ipd_m`` and ``convergence_m``; else each eye's T_head_eye [4, 4]
    (left, right) as a headset's runtime reports them (canted displays, the runtime's own IPD),
    and ``ipd_m`` is the distance between the two eye centres (set from them)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "T_world_head", _as_pose(self.T_world_head, "StereoRig.T_world_head"))
        if self.eye_poses is not None:
            if not isinstance(self.eye_poses, (tuple, list)) or len(self.eye_poses) != 2:
                raise GscacheError("StereoRig.eye_poses: expected None or (T_head_left, T_head_right), two 4x4 poses")
            if self.convergence_m is not None:
                raise GscacheError("StereoRig.eye_poses: the eyes' poses are given; convergence_m must be None")
            poses = tuple(_as_pose(T, f"StereoRig.eye_poses[{e}]") for e, T in enumerate(self.eye_poses))
            object.__setattr__(self, "eye_poses", poses)
            object.__setattr__(self, "ipd_m", float(torch.linalg.vector_norm(poses[1][:3, 3] - poses[0][:3, 3])))
        for name in ("left", "right"):
            if not isinstance(getattr(self, name), Intrinsics):
                raise GscacheError(f"StereoRig.{name}: expected an Intrinsics")
        if (self.left.width, self.left.height) != (self.right.width, self.right.height):
            raise GscacheError(
                "StereoRig: both eyes must have the same resolution, got "
                f"{self.left.width}x{self.left.height} and {self.right.width}x{self.right.height}"
            )
        if not (isinstance(self.ipd_m, (int, float)) and math.isfinite(self.ipd_m) and 0 <= self.ipd_m <= 1):
            raise GscacheError(f"StereoRig.ipd_m: expected metres in [0, 1], got {self.ipd_m!r}")
        if self.convergence_m is not None and not (
            isinstance(self.convergence_m, (int, float)) and math.isfinite(self.convergence_m) and self.convergence_m > 0
        ):
            raise GscacheError(f"StereoRig.convergence_m: expected None or a distance > 0, got {self.convergence_m!r}")
        _check_clip(self.near_m, self.far_m, "StereoRig")

    @staticmethod
    def symmetric(
        T_world_head, width: int, height: int, fov_y_deg: float = 90.0, ipd_m: float = 0.063, **kwargs
    ) -> "StereoRig":
        """A rig whose two eyes share centred intrinsics with the given vertical field of view."""
        intr = Intrinsics.from_fov(fov_y_deg, width, height)
        return StereoRig(T_world_head, intr, intr, ipd_m, **kwargs)

    def T_head_eye(self, eye: int) -> Tensor:
        """Eye-to-head transform of eye 0 (left) or 1 (right), [4, 4] float64."""
        if eye not in (0, 1):
            raise GscacheError(f"eye: expected 0 (left) or 1 (right), got {eye!r}")
        if self.eye_poses is not None:
            return self.eye_poses[eye].clone()
        sign = -1.0 if eye == 0 else 1.0
        T = torch.eye(4, dtype=torch.float64)
        T[0, 3] = sign * self.ipd_m / 2
        if self.convergence_m is not None:
            # Turn the eye about its y axis so its optical axis meets the head's z axis at
            # convergence_m; the left eye turns right (+angle about y), the right eye left.
            angle = -sign * math.atan2(self.ipd_m / 2, self.convergence_m)
            c, s = math.cos(angle), math.sin(angle)
            T[:3, :3] = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)
        return T

    def eyes(self) -> tuple[Camera, Camera]:
        """The (left, right) eye cameras."""
        cams = []
        for e, intr in enumerate((self.left, self.right)):
            T_world_eye = self.T_world_head @ self.T_head_eye(e)
            cams.append(Camera(intr, rigid_inverse(T_world_eye), self.near_m, self.far_m))
        return cams[0], cams[1]

    def with_pose(self, T_world_head) -> "StereoRig":
        """The same rig moved to another head pose."""
        return StereoRig(T_world_head, self.left, self.right, self.ipd_m, self.near_m, self.far_m, self.convergence_m,
                         self.eye_poses)

    @property
    def width(self) -> int:
        return self.left.width

    @property
    def height(self) -> int:
        return self.left.height


@dataclass(frozen=True, slots=True)
class ViewBatch:
    """The E views of one render as tensors on the render device (what stages consume).

    Built by :func:`views_of`; E is 1 for a mono camera and 2 for a stereo rig.
    """

    viewmats: Tensor
    """T_cam_world per view, [E, 4, 4] float32."""
    Ks: Tensor
    """Intrinsic matrices, [E, 3, 3] float32."""
    positions: Tensor
    """Camera centres in world coordinates, [E, 3] float32 (for view-dependent colour)."""
    width: int
    """Image width, pixels (shared by all views)."""
    height: int
    """Image height, pixels."""
    near_m: float
    """Near clip depth."""
    far_m: float
    """Far clip depth."""
    cameras: tuple[Camera, ...] = field(repr=False)
    """The source cameras, for the host-side code that needs them."""
    shared_depth: bool = True
    """Every Gaussian has the same depth in every view (parallel eyes: equal third rows of the
    float32 view matrices), so one depth order serves all views."""

    @property
    def n_views(self) -> int:
        return self.viewmats.shape[0]

    def select(self, e: int) -> "ViewBatch":
        """View e alone (E = 1)."""
        return ViewBatch(self.viewmats[e : e + 1], self.Ks[e : e + 1], self.positions[e : e + 1], self.width,
                         self.height, self.near_m, self.far_m, (self.cameras[e],), True)

    def scaled(self, factor: float) -> "ViewBatch":
        """The same views (poses, fields of view, depth order) at ``factor`` times the resolution
        (Intrinsics.scaled: the size rounded, the focal lengths and principal point scaled by it)."""
        cams = tuple(Camera(c.intrinsics.scaled(factor), c.T_cam_world, c.near_m, c.far_m) for c in self.cameras)
        Ks = torch.stack([c.intrinsics.K for c in cams]).to(device=self.Ks.device, dtype=torch.float32)
        return ViewBatch(self.viewmats, Ks, self.positions, cams[0].width, cams[0].height, self.near_m, self.far_m,
                         cams, self.shared_depth)

    def centred(self) -> "ViewBatch":
        """One pseudo-view at the mean of the view centres (for colours shared by the eyes)."""
        return ViewBatch(self.viewmats[:1], self.Ks[:1], self.positions.mean(dim=0, keepdim=True), self.width,
                         self.height, self.near_m, self.far_m, self.cameras[:1], True)


def views_of(camera_or_rig: "Camera | StereoRig", device: torch.device | str = "cpu") -> ViewBatch:
    """Pack a Camera (E=1) or a StereoRig (E=2) into a ViewBatch on ``device``."""
    if isinstance(camera_or_rig, StereoRig):
        cams = camera_or_rig.eyes()
    elif isinstance(camera_or_rig, Camera):
        cams = (camera_or_rig,)
    else:
        raise GscacheError(
            f"camera_or_rig: expected a Camera or a StereoRig, got {type(camera_or_rig).__name__}"
        )
    viewmats = torch.stack([c.T_cam_world for c in cams]).to(device=device, dtype=torch.float32)
    Ks = torch.stack([c.intrinsics.K for c in cams]).to(device=device, dtype=torch.float32)
    positions = torch.stack([c.position for c in cams]).to(device=device, dtype=torch.float32)
    c0 = cams[0]
    third_rows = viewmats[:, 2, :].cpu()
    shared = bool((third_rows == third_rows[:1]).all())
    return ViewBatch(viewmats, Ks, positions, c0.width, c0.height, c0.near_m, c0.far_m, tuple(cams), shared)
