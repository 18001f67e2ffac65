"""The profile plot of a scored tree: a PNG of the stated size and a well-formed vector PDF."""

import re

import numpy as np
import pandas as pd
from PIL import Image

from scoring.plots import plot_performance_profiles
from scoring.profiles import TAUS


def profiles_and_scores():
    rho = np.clip(np.vstack([TAUS - 1, (TAUS - 1) / 2, np.zeros_like(TAUS)]), 0, 1)
    profiles = pd.DataFrame(rho, index=["fast (a)", "slow\\b", "none"], columns=TAUS)
    return profiles, pd.Series([0.7, 0.4, 0.0], index=profiles.index, name="score")


def test_png_is_1500_by_900_and_shows_every_submission_in_colour(tmp_path):
    profiles, scores = profiles_and_scores()
    png, _ = plot_performance_profiles(profiles, scores, tmp_path / "p", "title")
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (1500, 900)
        colours = {colour for _, colour in image.convert("RGB").getcolors(1 << 20)}
    for colour in ((0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E), (0x2C, 0xA0, 0x2C)):
        assert colour in colours


def test_pdf_cross_reference_table_points_at_its_objects(tmp_path):
    profiles, scores = profiles_and_scores()
    _, pdf = plot_performance_profiles(profiles, scores, tmp_path / "p", "title")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF")
    start = int(re.search(rb"startxref\n(\d+)\n", data).group(1))
    assert data[start:start + 4] == b"xref"
    offsets = [int(o) for o in re.findall(rb"(\d{10}) 00000 n ", data)]
    assert len(offsets) == 5
    for number, offset in enumerate(offsets, start=1):
        assert data[offset:].startswith(b"%d 0 obj" % number)
    length = int(re.search(rb"/Length (\d+) >>\nstream\n", data).group(1))
    stream = data[data.index(b"stream\n") + 7:]
    assert stream[length:length + 10] == b"\nendstream"
    # Labels are escaped PDF strings; each submission's profile is one 100-point polyline.
    assert b"(fast \\(a\\) \\(0.7000\\)) Tj" in stream and b"(slow\\\\b \\(0.4000\\)) Tj" in stream
    assert stream[:length].count(b" l S") >= 3
