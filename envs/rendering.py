"""Offscreen rendering settings that make simulated evaluation affordable on a CPU.

MuJoCo's default visual quality (a 4096 shadow map, 4x multisampling) costs about 16x in
steps per second under Mesa's llvmpipe, and reflective materials (robosuite's table and
floor) make MuJoCo draw the scene twice, another 1.7x; at small image sizes the rest is
vertex work on robosuite's detailed visual meshes (~170k triangles for the Panda), so those
are simplified for rendering (never the collision meshes). robosuite rebuilds the model from XML
on every hard reset, so the settings are written into the XML (through the env's
`edit_model_xml` hook) rather than patched onto a live model.
"""

import hashlib
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

FAST_QUALITY = {"shadowsize": "0", "offsamples": "0"}


def use_headless_gl() -> None:
    """Pick EGL for offscreen rendering unless the user chose a backend already.

    Called by env factories just before MuJoCo is imported, never at import time.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])


def with_fast_visuals(xml: str) -> str:
    """Return the MJCF `xml` with shadows, multisampling and reflections switched off, and
    large visual-only meshes replaced by simplified copies (collision meshes untouched)."""
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
    simplify_visual_meshes(root)
    return ET.tostring(root, encoding="unicode")


# Visual meshes above this many triangles are simplified. Rasterizing is not what costs on a
# CPU at 64x64; transforming robosuite's ~170k Panda triangles per camera per step is.
MAX_VISUAL_FACES = 1200
KEEP_FRACTION = 0.3  # large meshes keep this share of their triangles (thin parts survive)
MESH_CACHE_VERSION = 2


def mesh_cache_dir() -> Path:
    return Path(os.environ.get("EMBODIED_CACHE_DIR", Path.home() / ".cache/embodied")) / "meshes"


def _visual_only_meshes(root: ET.Element) -> set[str]:
    """Meshes drawn only by geoms that never collide: simplifying them cannot change physics."""
    visual, colliding = set(), set()
    for geom in root.iter("geom"):
        mesh = geom.get("mesh")
        if mesh is None:
            continue
        is_visual = geom.get("contype") == "0" and geom.get("conaffinity") == "0"
        (visual if is_visual else colliding).add(mesh)
    return visual - colliding


def _write_stl(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    record = np.dtype([("normal", "<f4", 3), ("triangle", "<f4", (3, 3)), ("attributes", "<u2")])
    data = np.zeros(len(faces), dtype=record)
    data["triangle"] = vertices[faces]
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(b"embodied simplified visual mesh".ljust(80, b" "))
        f.write(np.uint32(len(faces)).tobytes())
        f.write(data.tobytes())
    tmp.replace(path)


def _simplified_file(source: str, max_faces: int) -> str | None:
    """Path of a simplified copy of mesh file `source`, or None if it is small enough."""
    import fast_simplification
    import mujoco

    stat = Path(source).stat()
    key = hashlib.sha1(
        f"{MESH_CACHE_VERSION}:{source}:{stat.st_size}:{stat.st_mtime_ns}:{max_faces}".encode()
    ).hexdigest()[:16]
    target = mesh_cache_dir() / f"{Path(source).stem}-{key}.stl"
    small_marker = target.with_suffix(".small")
    if target.exists():
        return str(target)
    if small_marker.exists():
        return None
    spec = f'<mujoco><asset><mesh name="m" file="{source}"/></asset></mujoco>'
    model = mujoco.MjModel.from_xml_string(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    faces = model.mesh_face[: model.mesh_facenum[0]]
    if len(faces) <= max_faces:
        small_marker.touch()
        return None
    vertices = model.mesh_vert[: model.mesh_vertnum[0]]
    # MuJoCo recentres and realigns a mesh on load; undo that so the copy sits where the
    # original does (MuJoCo will apply the same kind of correction to it).
    rotation = Rotation.from_quat(model.mesh_quat[0], scalar_first=True)
    vertices = rotation.apply(vertices) + model.mesh_pos[0]
    # OBJ meshes arrive with vertices duplicated per normal; weld them, or the simplifier
    # sees a soup of loose triangles and tears holes into the surface.
    vertices, inverse = np.unique(np.round(vertices, 7), axis=0, return_inverse=True)
    faces = inverse.reshape(-1)[faces]
    faces = faces[
        (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    ]
    keep = max(max_faces, int(KEEP_FRACTION * len(faces)))
    vertices, faces = fast_simplification.simplify(
        vertices, faces, target_reduction=1.0 - keep / len(faces)
    )
    _write_stl(target, vertices, faces)
    return str(target)


def simplify_visual_meshes(root: ET.Element, max_faces: int = MAX_VISUAL_FACES) -> None:
    """Point large visual-only meshes of the MJCF tree `root` at simplified copies."""
    visual = _visual_only_meshes(root)
    for mesh in root.iter("mesh"):
        source = mesh.get("file")
        if mesh.get("name") in visual and source and source.endswith((".stl", ".obj")):
            simplified = _simplified_file(source, max_faces)
            if simplified:
                mesh.set("file", simplified)
