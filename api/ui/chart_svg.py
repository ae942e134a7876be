"""Matplotlib figures to SVG fragments for embedding in a page (ADR 0036).

``new_figure`` makes a matplotlib ``Figure`` (object-oriented API, no pyplot, no global figure
manager) whose SVG user unit is one CSS pixel; ``to_fragment`` renders it with the SVG backend
and turns the document into a fragment fit for inline HTML: no XML prolog, DOCTYPE or
metadata, ``role="img"``, ``aria-labelledby`` naming a ``<title>`` and a ``<desc>`` that are
its first children, every element id prefixed by the figure's id (several charts on one page),
``href`` instead of ``xlink:href`` (so no namespace but SVG's own), and the backend's
``<style>`` scoped to this SVG. Same input, same bytes: a fixed ``svg.hashsalt`` for the ids
and no date.

Matplotlib is not thread-safe (its docs: serialize access yourself) and its SVG settings are
global ``rcParams``, so rendering holds one process-wide lock (uvicorn runs sync routes in a
thread pool)."""

from __future__ import annotations

import io
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
INK = "#1a1a1a"  # text and axes: 17.4:1 on white
FONT_PX = 12  # the smallest font size drawn (CSS pixels at the natural size)
FONTS = ["DejaVu Sans", "Liberation Sans", "Arial", "sans-serif"]

RC: dict[Any, Any] = {
    "svg.fonttype": "none",  # text stays <text>: selectable, read by zoom tools, scalable
    "svg.hashsalt": "outcome-ledger-charts",  # deterministic clip-path/marker ids
    "svg.image_inline": True,
    "font.family": "sans-serif",
    "font.sans-serif": FONTS,
    "font.size": FONT_PX,
    "text.color": INK,
    "text.parse_math": False,  # a "$" in a label is a dollar, not TeX
    "axes.edgecolor": INK,
    "axes.labelcolor": INK,
    "axes.labelsize": FONT_PX,
    "xtick.color": INK,
    "ytick.color": INK,
    "xtick.labelsize": FONT_PX,
    "ytick.labelsize": FONT_PX,
    "legend.fontsize": FONT_PX,
    "hatch.linewidth": 1.0,
    "path.simplify": False,
}

_LOCK = threading.Lock()
_ID = re.compile(r"url\(#([^)]+)\)")
_REF = re.compile(r"^#(.+)$|url\(#([^)]+)\)")
_AUTO_ID = re.compile(r"[A-Za-z0-9.]+_\d+")  # the backend's own group names: text_3, line2d_7

ET.register_namespace("", SVG_NS)


@contextmanager
def drawing(width_px: int, height_px: int) -> Iterator[MplFigure]:
    """A new figure of ``width_px`` x ``height_px`` CSS pixels (the SVG backend draws at 72 dpi,
    so one point is one user unit) to draw on and pass to ``to_fragment`` inside the block,
    which holds the process-wide lock and the chart settings (``RC``): artists take their fonts
    and colours from ``rcParams`` when they are made, the backend when it writes."""
    import matplotlib  # here, not at import: a process that draws no chart never loads it
    from matplotlib.figure import Figure as MplFigure

    with _LOCK, matplotlib.rc_context(RC):
        figure = MplFigure(figsize=(width_px / 72, height_px / 72), dpi=72, facecolor="white")
        try:
            yield figure
        finally:
            figure.clear()  # its artists freed now, not left in cycles for a full collection


def to_fragment(figure: MplFigure, *, figure_id: str, title: str, description: str) -> Markup:
    """The figure (drawn inside ``drawing``) as an inline SVG fragment (see the module's text);
    ``ValueError`` for a ``figure_id`` that is not a plain XML id (letters, digits, "-", "_",
    not a digit first)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", figure_id):
        raise ValueError(f"figure_id {figure_id!r}: letters, digits, '-' and '_' only")
    width, height = (round(v * 72) for v in figure.get_size_inches())
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None,
                                                   "Format": None, "Type": None})
    root = ET.fromstring(buffer.getvalue())
    _rewrite(root, figure_id, width, height)
    head = [ET.Element(f"{{{SVG_NS}}}title", id=f"{figure_id}-title"),
            ET.Element(f"{{{SVG_NS}}}desc", id=f"{figure_id}-desc")]
    head[0].text, head[1].text = title, description
    root[0:0] = head
    return Markup(ET.tostring(root, encoding="unicode", short_empty_elements=True))


def _rewrite(root: ET.Element, figure_id: str, width: int, height: int) -> None:
    """Prefix ids and references, drop the backend's unreferenced group ids (``patch_3``) and
    its metadata, scope its style, set the root's attributes."""
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag == f"{{{SVG_NS}}}metadata":
                parent.remove(child)
    root_id = f"{figure_id}-svg"
    referenced = {m.group(1) or m.group(2) for e in root.iter() for v in e.attrib.values()
                  for m in _REF.finditer(v)}
    for element in root.iter():
        own = element.attrib.pop("id", None)
        if own is not None and (own in referenced or not _AUTO_ID.fullmatch(own)):
            element.set("id", f"{figure_id}-{own}")
        href = element.attrib.pop(XLINK_HREF, None)
        if href is not None:
            element.set("href", f"#{figure_id}-{href.removeprefix('#')}")
        for name, value in list(element.attrib.items()):
            if "url(#" in value:
                element.set(name, _ID.sub(lambda m: f"url(#{figure_id}-{m.group(1)})", value))
        if element.tag == f"{{{SVG_NS}}}style" and element.text:
            element.text = re.sub(r"(^|})\s*([^{}]+?)\s*{", lambda m: f"{m.group(1)}#{root_id} "
                                  f"{m.group(2)}{{", element.text.strip())
    attrs = {"width": str(width), "height": str(height), "viewBox": f"0 0 {width} {height}",
             "id": root_id, "class": "chart", "role": "img",
             "aria-labelledby": f"{figure_id}-title {figure_id}-desc"}
    root.attrib.clear()
    root.attrib.update(attrs)
