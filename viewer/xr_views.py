"""OpenXR's views in gscache's conventions (pure math: no OpenXR import, so it is tested anywhere).

OpenXR (the specification's "Spaces" chapter) gives each view a pose (``XrPosef``: a unit
quaternion x, y, z, w and a position, metres) in a reference space and a field of view
(``XrFovf``: the angles of the left, right, up and down edges from the view direction, radians;
left and down are negative for a view that straddles its axis). Its spaces are right-handed with
x right, y up and the view looking along -z. gscache's cameras are OpenCV's: x right, y down,
looking along +z (gscache.camera). ``FLIP`` = diag(1, -1, -1) turns one set of axes into the
other, so an OpenXR pose ``T`` (view to reference space) becomes ``A @ FLIP @ T @ FLIP``, where
``A`` places the reference space in the scene (``T_world_origin``: the OpenXR origin in
gscache's camera axes, e.g. the viewer's head pose when the session started).

The edges of an asymmetric field of view give the pinhole directly: a point at (x, y, z) in
gscache's eye axes lands at u = fx x / z + cx with u = 0 at tan(angleLeft) and u = W at
tan(angleRight), and v = 0 at the top edge, y / z = -tan(angleUp) (y points down).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gscache import Intrinsics, StereoRig
from gscache.camera import look_at, rigid_inverse
from gscache.errors import GscacheError

FLIP = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
"""OpenXR axes (x right, y up, -z forward) <-> gscache's camera axes (x right, y down, +z forward)."""


@dataclass(frozen=True)
class XrView:
    """One located view as OpenXR reports it (``XrView``), in plain numbers."""

    orientation: tuple[float, float, float, float]
    """Unit quaternion (x, y, z, w): view to reference space."""
    position: tuple[float, float, float]
    """Metres, in the reference space."""
    fov: tuple[float, float, float, float]
    """(angleLeft, angleRight, angleUp, angleDown), radians."""


def fov_intrinsics(fov: tuple[float, float, float, float], width: int, height: int) -> Intrinsics:
    """The pinhole of an ``XrFovf`` (angleLeft, angleRight, angleUp, angleDown; radians) at
    ``width`` x ``height`` pixels (module docstring)."""
    left, right, up, down = (float(a) for a in fov)
    if not all(math.isfinite(a) and -math.pi / 2 < a < math.pi / 2 for a in (left, right, up, down)):
        raise GscacheError(f"fov: expected four angles in (-90, 90) degrees, in radians, got {fov!r}")
    tl, tr, tu, td = math.tan(left), math.tan(right), math.tan(up), math.tan(down)
    if not (tr > tl and tu > td):
        raise GscacheError(f"fov: expected angleRight > angleLeft and angleUp > angleDown, got {fov!r}")
    fx, fy = width / (tr - tl), height / (tu - td)
    return Intrinsics(fx, fy, -tl * fx, tu * fy, width, height)


def quaternion_matrix(q: tuple[float, float, float, float]) -> Tensor:
    """[3, 3] float64 rotation of a quaternion (x, y, z, w); normalised first (a runtime's are
    unit to float precision), a zero one refused."""
    x, y, z, w = (float(c) for c in q)
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if not math.isfinite(n) or n < 1e-6:
        raise GscacheError(f"orientation: expected a unit quaternion (x, y, z, w), got {q!r}")
    x, y, z, w = x / n, y / n, z / n, w / n
    return torch.tensor([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                         [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                         [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]], dtype=torch.float64)


def pose_matrix(orientation, position) -> Tensor:
    """[4, 4] float64 of an ``XrPosef`` (view to reference space, OpenXR axes)."""
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = quaternion_matrix(orientation)
    T[:3, 3] = torch.tensor([float(p) for p in position], dtype=torch.float64)
    if not torch.isfinite(T).all():
        raise GscacheError(f"position: expected three finite numbers, got {position!r}")
    return T


def eye_pose(view: XrView, T_world_origin: Tensor) -> Tensor:
    """T_world_eye [4, 4] float64 in gscache's camera axes of a located view, with the OpenXR
    reference space's origin at ``T_world_origin`` (gscache camera axes)."""
    return T_world_origin.double() @ FLIP @ pose_matrix(view.orientation, view.position) @ FLIP


def mid_rotation(Ra: Tensor, Rb: Tensor) -> Tensor:
    """The rotation halfway between two (the geodesic midpoint): Ra turned by half of Ra^T Rb."""
    rel = Ra.T @ Rb
    angle = math.acos(max(-1.0, min(1.0, (float(torch.trace(rel)) - 1.0) / 2.0)))
    if angle < 1e-12:
        return Ra.clone()
    axis = torch.stack([rel[2, 1] - rel[1, 2], rel[0, 2] - rel[2, 0], rel[1, 0] - rel[0, 1]]) / (2 * math.sin(angle))
    k = torch.tensor([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]], dtype=torch.float64)
    half = angle / 2
    return Ra @ (torch.eye(3, dtype=torch.float64) + math.sin(half) * k + (1 - math.cos(half)) * (k @ k))


def rig_from_views(views: list[XrView], width: int, height: int, T_world_origin: Tensor, near_m: float = 0.01,
                   far_m: float = 1e4) -> StereoRig:
    """The StereoRig of two located views (left, right) rendered at ``width`` x ``height``: the
    head halfway between the eyes (position and rotation), each eye's pose on it as located (the
    runtime's IPD and canting) and each eye's own asymmetric intrinsics."""
    if len(views) != 2:
        raise GscacheError(f"views: expected the two views of a stereo view configuration, got {len(views)}")
    T_eyes = [eye_pose(v, T_world_origin) for v in views]
    T_head = torch.eye(4, dtype=torch.float64)
    T_head[:3, :3] = mid_rotation(T_eyes[0][:3, :3], T_eyes[1][:3, :3])
    T_head[:3, 3] = (T_eyes[0][:3, 3] + T_eyes[1][:3, 3]) / 2
    head_from_world = rigid_inverse(T_head)
    eye_poses = tuple(head_from_world @ T for T in T_eyes)
    left, right = (fov_intrinsics(v.fov, width, height) for v in views)
    return StereoRig(T_head, left, right, near_m=near_m, far_m=far_m, eye_poses=eye_poses)


def layer_pose(T_world_eye: Tensor, T_world_origin: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (orientation x, y, z, w; position) of the view a frame was rendered for, back in the
    OpenXR reference space: what a projection layer's view must carry (the inverse of
    ``eye_pose``)."""
    T = FLIP @ rigid_inverse(T_world_origin.double()) @ T_world_eye.double() @ FLIP
    return matrix_quaternion(T[:3, :3]), tuple(float(v) for v in T[:3, 3])


def matrix_quaternion(R: Tensor) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a [3, 3] rotation, w >= 0 (Shepperd's method: the largest diagonal term
    picks the stable formula)."""
    m = R.double()
    trace = float(m[0, 0] + m[1, 1] + m[2, 2])
    if trace > 0:
        s = 2.0 * math.sqrt(1.0 + trace)
        q = (float(m[2, 1] - m[1, 2]) / s, float(m[0, 2] - m[2, 0]) / s, float(m[1, 0] - m[0, 1]) / s, s / 4)
    else:
        i = int(torch.argmax(torch.diagonal(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(max(1e-300, 1.0 + float(m[i, i] - m[j, j] - m[k, k])))
        v = [0.0, 0.0, 0.0]
        v[i] = s / 4
        v[j] = float(m[j, i] + m[i, j]) / s
        v[k] = float(m[k, i] + m[i, k]) / s
        q = (v[0], v[1], v[2], float(m[k, j] - m[j, k]) / s)
    if q[3] < 0:
        q = tuple(-c for c in q)
    return q


def plain_view(v) -> XrView:
    """An XrView of pyopenxr's as plain numbers."""
    o, p, f = v.pose.orientation, v.pose.position, v.fov
    return XrView((o.x, o.y, o.z, o.w), (p.x, p.y, p.z), (f.angle_left, f.angle_right, f.angle_up, f.angle_down))


def level(T_world_head: torch.Tensor, up) -> torch.Tensor:
    """The pose at the same place facing the same heading with no pitch or roll: where the
    OpenXR origin goes (the runtime's tracking supplies the head's own tilt; a tilted origin
    would tilt the user's horizon)."""
    T = T_world_head.double()
    up_v = torch.tensor(up, dtype=torch.float64)
    up_v = up_v / up_v.norm()
    forward = T[:3, 2] - up_v * (T[:3, 2] @ up_v)
    if float(forward.norm()) < 1e-9:  # looking straight up or down: keep the camera's own up
        forward = -T[:3, 1] - up_v * (-T[:3, 1] @ up_v)
    position = T[:3, 3]
    return look_at(position.tolist(), (position + forward / forward.norm()).tolist(), tuple(up_v.tolist()))


def gaze_fractions(gaze_orientation: tuple[float, float, float, float],
                   views: list[XrView]) -> list[tuple[float, float]] | None:
    """Where each eye's image is looked at: the eye gaze (XR_EXT_eye_gaze_interaction: a pose
    whose -z axis is the direction looked in, ``gaze_orientation`` in the views' reference
    space) as (x, y) fractions of each view's image (x from the left edge, y from the top, as
    gscache.stages.foveate.parse_gaze takes them), clamped to [0, 1]. The direction is taken at
    infinity in both eyes (the fixation distance is unknown; at 1 m the two eyes' points differ by
    about an IPD there, under 4% of a 90-degree image). None when the gaze points away from a view
    (at or behind its image plane)."""
    direction = quaternion_matrix(gaze_orientation)[:, 2] * -1.0  # the gaze's -z, in the reference space
    out = []
    for v in views:
        d = quaternion_matrix(v.orientation).T @ direction  # in the view's axes (x right, y up, -z forward)
        forward = -float(d[2])
        if forward <= 1e-6:
            return None
        tx, ty = float(d[0]) / forward, float(d[1]) / forward
        left, right, up, down = (math.tan(a) for a in v.fov)
        x = (tx - left) / (right - left)
        y = (up - ty) / (up - down)
        out.append((min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)))
    return out
