"""Offscreen rendering settings that make simulated evaluation affordable on a CPU.

MuJoCo's default visual quality (a 4096 shadow map, 4x multisampling) costs about 16x in
steps per second under Mesa's llvmpipe, and reflective materials (robosuite's table and
floor) make MuJoCo draw the scene twice, another 1.7x. robosuite rebuilds the model from XML
on every hard reset, so the settings are written into the XML (through the env's
`edit_model_xml` hook) rather than patched onto a live model.
"""

import os
import xml.etree.ElementTree as ET

FAST_QUALITY = {"shadowsize": "0", "offsamples": "0"}


def use_headless_gl() -> None:
    """Pick EGL for offscreen rendering unless the user chose a backend already.

    Called by env factories just before MuJoCo is imported, never at import time.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])


def with_fast_visuals(xml: str) -> str:
    """Return the MJCF `xml` with shadows, multisampling and reflections switched off."""
    root = ET.fromstring(xml)
    visual = root.find("visual")
    if visual is None:
        visual = ET.SubElement(root, "visual")
    quality = visual.find("quality")
    if quality is None:
        quality = ET.SubElement(visual, "quality")
    quality.attrib.update(FAST_QUALITY)
    for material in root.iter("material"):
        material.set("reflectance", "0")
    return ET.tostring(root, encoding="unicode")
