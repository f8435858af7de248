"""The viewer's parts without a window: the frame loop against a stand-in presenter (the seam an
OpenXR session would plug into), the switches' toggles against a stand-in renderer owner, and the
key table (its help text and its handling through a stand-in glfw)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from gscache import RenderConfig, StereoRig, open_renderer, render
from gscache.presets import FOVEATION_LEVELS
from gscache.viewer import ViewerOptions
from gscache.viewer.frame_loop import FrameLoop
from gscache.viewer.keys import BINDINGS, KeyHandler, help_text
from gscache.viewer.navigation import Navigation
from gscache.viewer.recording import PathRecorder
from gscache.viewer.switches import Switches, Toggles
from tests._helpers import random_scene

W, H = 32, 24


class Output:
    """A presenter that keeps what it is given (an OpenXR session would copy it to swapchains)."""

    def __init__(self, scene, config: RenderConfig) -> None:
        self.scene, self.devices = scene, ()
        self.renderer = open_renderer(scene, config)
        self.open, self.shown = True, True
        self.gaze = None  # an eye tracker's gaze per eye (an OpenXR session's), or None
        self.calls: list[str] = []
        self.images: list[torch.Tensor] = []

    def open_renderer(self, config: RenderConfig) -> None:
        self.renderer.close()
        self.renderer = open_renderer(self.scene, config)

    def poll(self) -> bool:
        self.calls.append("poll")
        return self.open

    def visible(self) -> bool:
        return self.shown

    def wait(self) -> None:
        self.calls.append("wait")

    def views(self, pose):
        rig = StereoRig.symmetric(pose, W, H, 90.0, 0.063)
        return rig, rig

    def upload(self, rgb: torch.Tensor, frame=None) -> None:
        self.calls.append("upload")
        self.images.append(rgb)

    def present(self) -> None:
        self.calls.append("present")


@pytest.fixture
def parts(tmp_path):
    scene = random_scene(300, seed=3)
    notes: list[str] = []
    switches = Switches.from_options(ViewerOptions(backend="cpu"))
    output = Output(scene, switches.render_config())
    nav = Navigation(scene, (0.0, -1.0, 0.0), None, notes.append)
    recorder = PathRecorder(tmp_path / "path.json", notes.append)
    loop = FrameLoop(output, nav, switches, recorder)
    yield SimpleNamespace(scene=scene, switches=switches, output=output, nav=nav, recorder=recorder, loop=loop,
                          notes=notes)
    output.renderer.close()


def test_a_step_renders_the_heads_view_and_hands_it_to_the_presenter(parts):
    loop, out = parts.loop, parts.output
    parts.nav.held.add("forward")
    start = parts.nav.fly.position.copy()
    assert loop.step(dt_s=0.5)
    assert out.calls == ["poll", "upload", "present"]
    assert (parts.nav.fly.position != start).any()  # the head moved before the frame
    assert torch.equal(loop.last_rig.T_world_head, parts.nav.pose())
    expected = render(parts.scene, loop.last_rig, RenderConfig(backend="cpu"))
    assert torch.allclose(out.images[0], expected.rgb, atol=1e-6)
    assert loop.frames_rendered == 1 and len(loop.stats.frame_ms) == 1 and loop.last_frame is not None


def test_nothing_is_rendered_while_hidden_and_the_loop_ends_when_closed(parts):
    loop, out = parts.loop, parts.output
    out.shown = False
    assert loop.step()
    assert out.calls == ["poll", "wait"] and loop.frames_rendered == 0
    out.shown, out.open = True, False
    assert not loop.step()
    out.open = True
    loop.run(frames=3)
    assert loop.frames_rendered == 3 and out.calls.count("present") == 3


def test_accounting_records_the_path_and_adapts_the_scale(parts, tmp_path):
    loop = parts.loop
    parts.switches.target_ms = 1e-6  # no frame is that fast: the scale shrinks by 10% a frame
    parts.recorder.toggle()
    loop.run(frames=2)
    assert parts.switches.scale == pytest.approx(0.81)
    assert parts.recorder.toggle() == tmp_path / "path.json" and "wrote 2 poses" in parts.notes[-1]


def test_zones_are_drawn_into_the_eyes_handed_over(parts):
    toggles = Toggles(parts.switches, parts.output, parts.loop.stats, parts.notes.append)
    toggles.cycle_foveation()  # off -> low
    assert parts.output.renderer.config.foveation == FOVEATION_LEVELS["low"]
    parts.switches.show_zones = True
    parts.loop.step()
    assert (parts.output.images[-1] == 1.0).all(dim=-1).any()  # the fovea's white outline
    assert not (parts.loop.last_frame.rgb == 1.0).all(dim=-1).any()  # drawn on the copy handed over only


def test_the_fovea_follows_the_presenters_gaze(parts):
    """An output that tracks the eyes (OpenXR's eye gaze) places each eye's fovea: the frame is
    the renderer's at that gaze, and the zones are drawn there."""
    from gscache.stages.foveate import fovea_layout

    toggles = Toggles(parts.switches, parts.output, parts.loop.stats, parts.notes.append)
    toggles.cycle_foveation()  # off -> low
    parts.output.gaze = [(0.2, 0.3), (0.25, 0.3)]
    parts.switches.show_zones = True
    parts.loop.step()
    cfg = parts.output.renderer.config
    expected = render(parts.scene, parts.loop.last_rig, cfg, gaze=parts.output.gaze)
    centred = render(parts.scene, parts.loop.last_rig, cfg)
    assert torch.equal(parts.loop.last_frame.rgb, expected.rgb) and not torch.equal(expected.rgb, centred.rgb)
    x0, y0, x1, _ = fovea_layout(W, H, 2, cfg.foveation, torch.tensor(parts.output.gaze)).inner[0]
    assert (parts.output.images[-1][0, y0, x0:x1] == 1.0).all()  # the outline where the eye looks


def test_toggles_reopen_or_reconfigure_the_owners_renderer(parts):
    toggles = Toggles(parts.switches, parts.output, parts.loop.stats, parts.notes.append)
    parts.loop.step()
    first = parts.output.renderer
    toggles.cycle_reuse()  # stereo -> approx: a new renderer, statistics restarted
    assert parts.switches.reuse == "approx" and parts.output.renderer is not first
    assert parts.notes[-1] == "reuse mode approx" and not parts.loop.stats.frame_ms
    toggles.cycle_appearance()
    assert parts.notes[-1] == "this scene has no appearance embeddings"
    parts.output.devices = ("local",)
    toggles.cycle_foveation()
    assert parts.switches.foveation == "off" and "one device" in parts.notes[-1]


def test_the_help_comes_from_the_key_table():
    text = help_text().splitlines()
    assert len(text) == len(BINDINGS)
    for line, b in zip(text, BINDINGS):
        assert line.startswith(b.keys) and line.endswith(b.does)
    keys = [k for b in BINDINGS for k in (*b.press, *b.hold)]
    assert len(keys) == len(set(keys))  # no key bound twice


def test_every_bound_key_is_a_glfw_key():
    glfw = pytest.importorskip("glfw", reason="glfw is not installed")
    for b in BINDINGS:
        for name in (*b.press, *b.hold):
            assert isinstance(getattr(glfw, f"KEY_{name}"), int), name


def test_key_handler_holds_moves_and_runs_actions_on_press_only():
    names = [k for b in BINDINGS for k in (*b.press, *b.hold)] + ["X"]
    glfw = SimpleNamespace(PRESS=1, RELEASE=0, REPEAT=2, **{f"KEY_{k}": i for i, k in enumerate(names)})
    ran: list[str] = []
    target = SimpleNamespace(cycle_target=lambda: ran.append("T"), snap_to_camera=lambda step: ran.append(step))
    held: set[str] = set()
    keys = KeyHandler(glfw, target, held)
    keys.on_key(None, glfw.KEY_W, 0, glfw.PRESS, 0)
    keys.on_key(None, glfw.KEY_Q, 0, glfw.PRESS, 0)
    keys.on_key(None, glfw.KEY_W, 0, glfw.RELEASE, 0)
    assert held == {"down"}
    for action in (glfw.PRESS, glfw.REPEAT, glfw.RELEASE):
        keys.on_key(None, glfw.KEY_T, 0, action, 0)
    keys.on_key(None, glfw.KEY_P, 0, glfw.PRESS, 0)
    keys.on_key(None, glfw.KEY_X, 0, glfw.PRESS, 0)  # unbound: nothing
    assert ran == ["T", -1]


def test_the_pixel_reuse_tint_marks_only_the_reused_tiles():
    from gscache.viewer.images import tint_reused

    rgb = torch.rand(2, 40, 50, 3)
    reused = torch.zeros(2, 3, 4, dtype=torch.bool)
    reused[1, 2, 3] = True  # the bottom-right tile of the right eye (cut by the image edge)
    out = tint_reused(rgb, reused, 16)
    changed = (out != rgb).any(dim=-1)
    assert not changed[0].any() and bool(changed[1, 32:40, 48:50].all()) and int(changed.sum()) == 8 * 2
    assert bool((out[1, 35, 49, 1] > rgb[1, 35, 49, 1]) | (rgb[1, 35, 49, 1] == 1))
