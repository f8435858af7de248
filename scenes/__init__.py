"""Procedural scenes: the embedded demo scene and large city scenes for scale tests.

World convention as everywhere in gscache (OpenCV): y points down, so "up" is -y and the
ground is the plane y = 0 with objects at negative y. Units are metres.
"""

from .city import city_scene
from .demo import demo_scene
from .structured import structured_demo

__all__ = ["demo_scene", "city_scene", "structured_demo"]
