"""The qsecure kernel's icon: a violet tile with a white Bloch sphere (a ring, its
equator and a state vector), so launchers and kernel pickers tell it apart from
ipykernel's Python logo at a glance.

Drawn here, at install time, instead of shipping binary files: the PNGs come from the
same few shapes as the SVG, with the standard library only (``zlib`` for PNG's deflate;
no imaging library is a dependency), anti-aliased by 4x supersampling.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

__all__ = ["BACKGROUND", "png", "svg", "write_logos"]

#: Tile colour (violet) and drawing colour (white), RGB.
BACKGROUND = (0x5B, 0x21, 0xB6)
FOREGROUND = (0xFF, 0xFF, 0xFF)

# Shapes in a unit square (0..1), shared by the SVG and the PNGs.
_CORNER = 0.18  # tile corner radius
_CENTRE = (0.5, 0.5)
_RADIUS = 0.32  # sphere
_STROKE = 0.055
_EQUATOR_RY = 0.11  # the equator ellipse's vertical radius
_STATE = (0.5 + _RADIUS * math.cos(math.radians(55)), 0.5 - _RADIUS * math.sin(math.radians(55)))
_DOT = 0.07


def svg() -> str:
    """The icon as SVG (``logo-svg.svg``)."""
    bg = "#" + bytes(BACKGROUND).hex()
    cx, cy = (v * 64 for v in _CENTRE)
    r, stroke, ry = _RADIUS * 64, _STROKE * 64, _EQUATOR_RY * 64
    sx, sy = (v * 64 for v in _STATE)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
        f'<rect width="64" height="64" rx="{_CORNER * 64:.2f}" fill="{bg}"/>'
        f'<g fill="none" stroke="#ffffff" stroke-width="{stroke:.2f}" stroke-linecap="round">'
        f'<circle cx="{cx:.2f}" cy="{cy:.2f}" r="{r:.2f}"/>'
        f'<ellipse cx="{cx:.2f}" cy="{cy:.2f}" rx="{r:.2f}" ry="{ry:.2f}"/>'
        f'<line x1="{cx:.2f}" y1="{cy:.2f}" x2="{sx:.2f}" y2="{sy:.2f}"/></g>'
        f'<circle cx="{sx:.2f}" cy="{sy:.2f}" r="{_DOT * 64:.2f}" fill="#ffffff"/></svg>\n'
    )


def _coverage(x: float, y: float) -> tuple[bool, bool]:
    """(inside the tile, on a white stroke) for a point of the unit square."""
    # rounded square
    dx = max(_CORNER - x, 0.0, x - (1 - _CORNER))
    dy = max(_CORNER - y, 0.0, y - (1 - _CORNER))
    inside = dx * dx + dy * dy <= _CORNER * _CORNER
    if not inside:
        return False, False
    half = _STROKE / 2
    cx, cy = _CENTRE
    dist = math.hypot(x - cx, y - cy)
    if abs(dist - _RADIUS) <= half:
        return True, True
    # equator: points near the ellipse (normalised distance, good enough for thin strokes)
    ex, ey = (x - cx) / _RADIUS, (y - cy) / _EQUATOR_RY
    norm = math.hypot(ex, ey)
    if norm > 0 and abs(x - cx) <= _RADIUS + half:
        grad = math.hypot(ex / _RADIUS, ey / _EQUATOR_RY)
        if abs(norm * norm - 1) / (2 * grad) <= half:
            return True, True
    # state vector (segment centre -> state) and its dot
    sx, sy = _STATE
    vx, vy = sx - cx, sy - cy
    t = max(0.0, min(1.0, ((x - cx) * vx + (y - cy) * vy) / (vx * vx + vy * vy)))
    if math.hypot(x - (cx + t * vx), y - (cy + t * vy)) <= half:
        return True, True
    if math.hypot(x - sx, y - sy) <= _DOT:
        return True, True
    return True, False


def png(size: int) -> bytes:
    """The icon as a ``size`` x ``size`` RGBA PNG."""
    samples = 4
    rows = []
    for py in range(size):
        row = bytearray([0])  # filter type 0 (None) for the scanline
        for px in range(size):
            tile = white = 0
            for sy in range(samples):
                for sx in range(samples):
                    inside, stroke = _coverage(
                        (px + (sx + 0.5) / samples) / size, (py + (sy + 0.5) / samples) / size
                    )
                    tile += inside
                    white += stroke
            total = samples * samples
            if tile == 0:
                row += bytes(4)
                continue
            mix = white / tile
            rgb = [round(b + (f - b) * mix) for b, f in zip(BACKGROUND, FOREGROUND, strict=True)]
            row += bytes([*rgb, round(255 * tile / total)])
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def write_logos(folder: Path) -> None:
    """Write ``logo-32x32.png``, ``logo-64x64.png`` and ``logo-svg.svg`` into ``folder``
    (the names Jupyter's kernelspec API serves as the kernel's resources)."""
    (folder / "logo-32x32.png").write_bytes(png(32))
    (folder / "logo-64x64.png").write_bytes(png(64))
    (folder / "logo-svg.svg").write_text(svg(), encoding="utf-8")
