"""The performance-profile plot, as PNG and PDF.

A profile plot is a handful of polylines, a grid, tick labels and a legend, so it is laid out
here once, as a list of shapes in points (1/72 inch, origin bottom left), and that list is
rendered twice: rasterised with Pillow for the PNG (drawn at twice the size and reduced, which
smooths the edges) and written as a vector PDF by hand, with the standard Helvetica font, which
every PDF reader has. This takes a few tens of milliseconds where a plotting library spends most
of a second importing itself and laying out a general-purpose figure. Pillow is imported on first
use only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

# 10 x 6 inches; the PNG at 150 dpi (1500 x 900 pixels).
WIDTH, HEIGHT = 720.0, 432.0
PNG_DPI = 150
_SUPERSAMPLE = 2
# The axes' box in points, and the data range it shows.
_LEFT, _RIGHT, _BOTTOM, _TOP = 62.0, 706.0, 48.0, 400.0
_Y_RANGE = (-0.02, 1.02)
# Ten clearly distinct colours, then darker ones for an 11th submission and more.
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#843c39", "#7b4173")
_GRID, _AXIS, _TEXT = "#dcdcdc", "#333333", "#000000"


@dataclass(frozen=True)
class _Line:
    points: tuple[tuple[float, float], ...]
    colour: str
    width: float


@dataclass(frozen=True)
class _Text:
    x: float
    y: float  # the vertical middle of the text
    text: str
    size: float
    align: str = "left"  # left, center, right
    vertical: bool = False  # rotated 90 degrees counter-clockwise


@dataclass(frozen=True)
class _Box:
    x0: float
    y0: float
    x1: float
    y1: float
    fill: str
    edge: str


def plot_performance_profiles(profiles: pd.DataFrame, scores: pd.Series | None,
                              path_stem: Path, title: str = "") -> list[Path]:
    """Draw rho_s(tau) for every submission; write ``<path_stem>.png`` and ``.pdf``."""
    shapes = _layout(profiles, scores, title)
    png, pdf = path_stem.with_suffix(".png"), path_stem.with_suffix(".pdf")
    _write_png(shapes, png)
    _write_pdf(shapes, pdf)
    return [png, pdf]


def _layout(profiles: pd.DataFrame, scores: pd.Series | None, title: str) -> list:
    taus = profiles.columns.to_numpy(dtype=float)
    x_range = (float(taus.min()), float(taus.max()))

    def to_x(tau: np.ndarray) -> np.ndarray:
        return _LEFT + (tau - x_range[0]) / (x_range[1] - x_range[0]) * (_RIGHT - _LEFT)

    def to_y(rho: np.ndarray) -> np.ndarray:
        return _BOTTOM + (rho - _Y_RANGE[0]) / (_Y_RANGE[1] - _Y_RANGE[0]) * (_TOP - _BOTTOM)

    shapes: list = []
    x_ticks = np.arange(np.ceil(x_range[0] * 2) / 2, x_range[1] + 1e-9, 0.5)
    y_ticks = np.linspace(0.0, 1.0, 6)
    for tick in x_ticks:
        x = float(to_x(tick))
        shapes.append(_Line(((x, _BOTTOM), (x, _TOP)), _GRID, 0.8))
        shapes.append(_Line(((x, _BOTTOM), (x, _BOTTOM - 4)), _AXIS, 0.8))
        shapes.append(_Text(x, _BOTTOM - 13, f"{tick:.1f}", 10, "center"))
    for tick in y_ticks:
        y = float(to_y(tick))
        shapes.append(_Line(((_LEFT, y), (_RIGHT, y)), _GRID, 0.8))
        shapes.append(_Line(((_LEFT, y), (_LEFT - 4, y)), _AXIS, 0.8))
        shapes.append(_Text(_LEFT - 7, y, f"{tick:.1f}", 10, "right"))

    order = scores.sort_values(ascending=False).index if scores is not None else profiles.index
    entries = []
    for number, submission in enumerate(order):
        label = str(submission)
        if scores is not None and pd.notna(scores.get(submission)):
            label += f" ({scores[submission]:.4f})"
        colour = _COLOURS[number % len(_COLOURS)]
        # The profile as sampled for the score (the trapezoid integrates these very points).
        rho = profiles.loc[submission].to_numpy(dtype=float)
        shapes.append(_Line(tuple(zip(to_x(taus).tolist(), to_y(rho).tolist(), strict=True)),
                            colour, 2.0))
        entries.append((label, colour))

    corners = ((_LEFT, _BOTTOM), (_RIGHT, _BOTTOM), (_RIGHT, _TOP), (_LEFT, _TOP), (_LEFT, _BOTTOM))
    shapes.append(_Line(corners, _AXIS, 0.8))
    shapes += _legend(entries, "submission (score)" if scores is not None else "")
    shapes.append(_Text((_LEFT + _RIGHT) / 2, 20, "tau: time to target relative to the fastest "
                                                  "submission", 11, "center"))
    shapes.append(_Text(18, (_BOTTOM + _TOP) / 2, "fraction of base workloads within tau", 11,
                        "center", vertical=True))
    if title:
        shapes.append(_Text((_LEFT + _RIGHT) / 2, _TOP + 16, title, 12, "center"))
    return shapes


def _legend(entries: list[tuple[str, str]], heading: str) -> list:
    """A white box in the lower right corner of the axes: a line sample and a label per entry."""
    size, row, pad, sample = 9.0, 13.0, 6.0, 22.0
    rows = len(entries) + bool(heading)
    text_width = max([_text_width(label, size) for label, _ in entries]
                     + [_text_width(heading, size) - sample - 6])
    x1, y0 = _RIGHT - 8, _BOTTOM + 8
    x0, y1 = x1 - (2 * pad + sample + 6 + text_width), y0 + 2 * pad + rows * row
    shapes: list = [_Box(x0, y0, x1, y1, "#ffffff", "#cccccc")]
    y = y1 - pad - row / 2
    if heading:
        shapes.append(_Text((x0 + x1) / 2, y, heading, size, "center"))
        y -= row
    for label, colour in entries:
        shapes.append(_Line(((x0 + pad, y), (x0 + pad + sample, y)), colour, 2.0))
        shapes.append(_Text(x0 + pad + sample + 6, y, label, size))
        y -= row
    return shapes


def _text_width(text: str, size: float) -> float:
    """Helvetica's advance widths, closely enough for alignment: digits and most letters."""
    em = 0.0
    for char in text:
        if char.isdigit():
            em += 0.556
        elif char in " .,:;()[]/|'!il":
            em += 0.278 if char not in "()[]" else 0.333
        elif char.isupper() or char in "mw":
            em += 0.72
        else:
            em += 0.53
    return em * size


# -- PNG ---------------------------------------------------------------------------------------

def _write_png(shapes: list, path: Path) -> None:
    from PIL import Image, ImageDraw

    scale = PNG_DPI / 72 * _SUPERSAMPLE
    image = Image.new("RGB", (round(WIDTH * scale), round(HEIGHT * scale)), "#ffffff")
    draw = ImageDraw.Draw(image)

    def pixel(x: float, y: float) -> tuple[float, float]:
        return x * scale, (HEIGHT - y) * scale

    for shape in shapes:
        if isinstance(shape, _Box):
            x0, y1 = pixel(shape.x0, shape.y0)
            x1, y0 = pixel(shape.x1, shape.y1)
            draw.rectangle((x0, y0, x1, y1), fill=shape.fill, outline=shape.edge,
                           width=max(1, round(0.8 * scale)))
        elif isinstance(shape, _Line):
            draw.line([pixel(x, y) for x, y in shape.points], fill=shape.colour,
                      width=max(1, round(shape.width * scale)), joint="curve")
        else:
            _draw_text(image, draw, shape, pixel(shape.x, shape.y), scale)
    image.reduce(_SUPERSAMPLE).save(path, format="PNG", compress_level=3)


def _draw_text(image, draw, text: _Text, at: tuple[float, float], scale: float) -> None:
    from PIL import Image, ImageDraw

    font = _font(round(text.size * scale))
    anchor = {"left": "lm", "center": "mm", "right": "rm"}[text.align]
    if not text.vertical:
        draw.text(at, text.text, fill=_TEXT, font=font, anchor=anchor)
        return
    left, top, right, bottom = font.getbbox(text.text, anchor="lt")
    label = Image.new("L", (right + 2, bottom + 2), 0)
    ImageDraw.Draw(label).text((0, 0), text.text, fill=255, font=font, anchor="lt")
    label = label.rotate(90, expand=True)
    x, y = at
    image.paste(_TEXT, (round(x - label.width / 2), round(y - label.height / 2)), label)


@cache
def _font(pixels: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=pixels)


# -- PDF ---------------------------------------------------------------------------------------

def _write_pdf(shapes: list, path: Path) -> None:
    commands = ["1 J 1 j"]  # round caps and joins, as the PNG draws them
    for shape in shapes:
        if isinstance(shape, _Box):
            commands.append(f"{_rgb(shape.fill)} rg {_rgb(shape.edge)} RG 0.8 w "
                            f"{shape.x0:.2f} {shape.y0:.2f} {shape.x1 - shape.x0:.2f} "
                            f"{shape.y1 - shape.y0:.2f} re B")
        elif isinstance(shape, _Line):
            (x, y), rest = shape.points[0], shape.points[1:]
            path_ops = " ".join(f"{px:.2f} {py:.2f} l" for px, py in rest)
            commands.append(f"{_rgb(shape.colour)} RG {shape.width:g} w "
                            f"{x:.2f} {y:.2f} m {path_ops} S")
        else:
            commands.append(_pdf_text(shape))
    content = "\n".join(commands).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {WIDTH:g} {HEIGHT:g}] "
        f"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content
        + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    path.write_bytes(bytes(out))


def _pdf_text(text: _Text) -> str:
    width = _text_width(text.text, text.size)
    shift = {"left": 0.0, "center": width / 2, "right": width}[text.align]
    # From the text's vertical middle to its baseline: about a third of the size.
    down = 0.35 * text.size
    if text.vertical:
        matrix = f"0 1 -1 0 {text.x + down:.2f} {text.y - shift:.2f}"
    else:
        matrix = f"1 0 0 1 {text.x - shift:.2f} {text.y - down:.2f}"
    escaped = (text.text.encode("cp1252", "replace").decode("latin-1")
               .replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)"))
    return f"{_rgb(_TEXT)} rg BT /F1 {text.size:g} Tf {matrix} Tm ({escaped}) Tj ET"


def _rgb(colour: str) -> str:
    return " ".join(f"{int(colour[i:i + 2], 16) / 255:.3f}" for i in (1, 3, 5))
