"""RandAugment of the ViT workload: every op against hand-worked pixels (PIL and tensor paths), the paths
against each other, upstream's op table, and the op/sign draws."""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest
import torch
from PIL import Image

from workloads.imagenet import randaugment as ra

PATHS = ("pil", "tensor")
F32_03 = float(np.float32(0.3))  # what upstream's float(torch.tensor(0.3)) gives
F32_19 = float(np.float32(1.9))


def run(path: str, pixels: np.ndarray, name: str, magnitude: float, **kwargs) -> np.ndarray:
    """`name` on an (H, W, 3) or (H, W) uint8 array (gray is copied to RGB), through one path; (H, W, 3) back."""
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if path == "pil":
        return np.asarray(ra.apply_op_pil(Image.fromarray(pixels), name, magnitude, **kwargs))
    image = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
    return ra.apply_op_tensor(image, name, magnitude, **kwargs).permute(1, 2, 0).numpy()


def gray(path: str, rows, name: str, magnitude: float, **kwargs) -> np.ndarray:
    """The red channel of `name` on a gray image (all channels agree when the input is gray)."""
    out = run(path, np.array(rows, dtype=np.uint8), name, magnitude, **kwargs)
    assert (out == out[..., :1]).all()
    return out[..., 0]


F = ra.FILL  # 128
INDEX_4x4 = 10 * np.arange(4)[:, None] + np.arange(4)[None, :]  # pixel (row y, column x) = 10 y + x
INDEX_6x4 = 10 * np.arange(6)[:, None] + np.arange(4)[None, :]


def test_op_table_is_upstreams():
    # upstream's ops_space(): names in order (the drawn index picks from it), magnitudes, signed flags
    assert ra.OPS == {
        "ShearX": (F32_03, True),
        "ShearY": (F32_03, True),
        "TranslateX": (100.0, True),
        "TranslateY": (100.0, True),
        "Rotate": (30.0, True),
        "Brightness": (F32_19, False),
        "Color": (F32_19, False),
        "Contrast": (F32_19, False),
        "Sharpness": (F32_19, False),
        "Posterize": (4.0, False),
        "Solarize": (256.0, False),
        "SolarizeAdd": (110.0, False),
        "AutoContrast": (0.0, False),
        "Equalize": (0.0, False),
        "Invert": (0.0, False),
        "Cutout": (40.0, False),
    }
    assert list(ra.OPS)[0] == "ShearX" and list(ra.OPS)[-1] == "Cutout"
    assert F32_03 == 0.30000001192092896 and F32_19 == 1.899999976158142
    assert (ra.NUM_OPS, ra.FILL) == (2, 128)


# --- every op, hand-worked -----------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_pixelwise_ops(path):
    assert gray(path, [[0, 100], [200, 255]], "Invert", 0.0).tolist() == [[255, 155], [55, 0]]
    # keep the top 4 bits: 55 = 0x37 -> 0x30, 200 = 0xC8 -> 0xC0
    assert gray(path, [[15, 55], [200, 255]], "Posterize", 4.0).tolist() == [[0, 48], [192, 240]]
    # threshold 256 is above every uint8 value: upstream's Solarize leaves the image as it is
    assert gray(path, [[0, 127], [128, 255]], "Solarize", 256.0).tolist() == [[0, 127], [128, 255]]
    assert gray(path, [[0, 127], [128, 200]], "Solarize", 128.0).tolist() == [[0, 127], [127, 55]]
    # +110 below 128 only: 0 -> 110, 20 -> 130, 127 -> 237; 128 and 200 stay
    out = gray(path, [[0, 20, 127], [128, 200, 255]], "SolarizeAdd", 110.0)
    assert out.tolist() == [[110, 130, 237], [128, 200, 255]]
    assert gray(path, [[100, 127, 128]], "SolarizeAdd", 200.0).tolist() == [[255, 255, 128]]  # clipped at 255


@pytest.mark.parametrize("path", PATHS)
def test_enhance_ops(path):
    # Brightness: floor(1.9 v) clipped; 1.9 v is exact in float32 for these v, 1.9 * 150 = 285 clips
    assert gray(path, [[0, 1, 3, 10, 100, 150]], "Brightness", F32_19).tolist() == [[0, 1, 5, 19, 190, 255]]
    # Color: luma L = (19595 R + 38470 G + 7471 B + 2^15) >> 16 = 4,139,898 >> 16 = 63 for (100, 50, 30);
    # out = floor(clip(L + 1.9 (c - L))): 63 + 70.3 = 133.3, 63 - 24.7 = 38.3, 63 - 62.7 = 0.3
    assert run(path, np.array([[[100, 50, 30]]]), "Color", F32_19).tolist() == [[[133, 38, 0]]]
    assert gray(path, [[7, 200]], "Color", F32_19).tolist() == [[7, 200]]  # gray pixels are their own luma
    # Contrast: blend with the mean luma rounded half up; mean(100, 200) = 150 -> 150 -/+ 1.9 * 50
    assert gray(path, [[100, 200]], "Contrast", F32_19).tolist() == [[55, 245]]
    # mean(100, 100, 104) = 101.33 -> 101: 101 - 1.9 = 99.1, 101 + 5.7 = 106.7 (the unrounded mean would give 98)
    assert gray(path, [[100, 100, 104]], "Contrast", F32_19).tolist() == [[99, 99, 106]]
    # Sharpness: SMOOTH = [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 inside, border kept; centre
    # round((8 * 10 + 5 * 100) / 13) = round(44.6) = 45, then 45 + 1.9 * (100 - 45) = 149.5 -> 149
    rows = [[10, 10, 10], [10, 100, 10], [10, 10, 10]]
    assert gray(path, rows, "Sharpness", F32_19).tolist() == [[10, 10, 10], [10, 149, 10], [10, 10, 10]]


@pytest.mark.parametrize("path", PATHS)
def test_histogram_ops(path):
    # AutoContrast per channel: [100, 151] -> scale 255 / 51 = 5, [0, 85] -> scale 3, a constant channel stays
    pixels = np.zeros((1, 3, 3), dtype=np.uint8)
    pixels[0, :, 0] = [100, 110, 151]
    pixels[0, :, 1] = [0, 40, 85]
    pixels[0, :, 2] = 7
    assert run(path, pixels, "AutoContrast", 0.0)[0].tolist() == [[0, 0, 7], [50, 120, 7], [255, 255, 7]]
    # Equalize (Pillow): step = (N - count of the top value) // 255, lut[v] = (step // 2 + #pixels below v) // step.
    # 1024 pixels: 512 of 10, 256 of 20, 256 of 30 -> step = 768 // 255 = 3:
    # 10 -> (1 + 0) // 3 = 0, 20 -> (1 + 512) // 3 = 171, 30 -> (1 + 768) // 3 = 256, clipped to 255
    pixels = np.full(1024, 30, dtype=np.uint8)
    pixels[:512], pixels[512:768] = 10, 20
    out = gray(path, pixels.reshape(32, 32), "Equalize", 0.0).reshape(-1)
    assert (out[:512] == 0).all() and (out[512:768] == 171).all() and (out[768:] == 255).all()
    # fewer than 256 pixels below the top value: step 0, the image is left alone
    assert gray(path, [[3, 9], [9, 200]], "Equalize", 0.0).tolist() == [[3, 9], [9, 200]]


@pytest.mark.parametrize("path", PATHS)
def test_shears(path):
    # ShearX 0.3 about the origin: output (x, y) reads input column floor(x + 0.5 + 0.3 (y + 0.5)), i.e.
    # row y moves left by floor(0.65 + 0.3 y) = 0, 0, 1, 1, 1, 2 pixels; uncovered pixels are gray
    expected = [
        [0, 1, 2, 3],
        [10, 11, 12, 13],
        [21, 22, 23, F],
        [31, 32, 33, F],
        [41, 42, 43, F],
        [52, 53, F, F],
    ]
    assert gray(path, INDEX_6x4, "ShearX", F32_03).tolist() == expected
    # -0.3: floor(0.35 - 0.3 y) = 0, 0, -1, -1, -1, -2: rows move right
    expected = [
        [0, 1, 2, 3],
        [10, 11, 12, 13],
        [F, 20, 21, 22],
        [F, 30, 31, 32],
        [F, 40, 41, 42],
        [F, F, 50, 51],
    ]
    assert gray(path, INDEX_6x4, "ShearX", -F32_03).tolist() == expected
    # ShearY is the same along the other axis: column x moves up by 0, 0, 1, 1, 1, 2
    shifted_up = [[0, 1, 2, 3], [10, 11, 12, 13], [21, 22, 23, F], [31, 32, 33, F], [41, 42, 43, F], [52, 53, F, F]]
    assert gray(path, INDEX_6x4.T, "ShearY", F32_03).tolist() == np.array(shifted_up).T.tolist()


@pytest.mark.parametrize("path", PATHS)
def test_translations(path):
    # +100 px moves the image right (down): output column x shows input column x - 100
    wide = np.tile(np.arange(104, dtype=np.uint8), (2, 1))  # (2, 104), pixel = column index
    out = gray(path, wide, "TranslateX", 100.0)
    assert (out[:, :100] == F).all() and out[:, 100:].tolist() == [[0, 1, 2, 3]] * 2
    out = gray(path, wide, "TranslateX", -100.0)
    assert out[:, :4].tolist() == [[100, 101, 102, 103]] * 2 and (out[:, 4:] == F).all()
    out = gray(path, wide.T, "TranslateY", 100.0)
    assert (out[:100] == F).all() and out[100:].tolist() == [[0, 0], [1, 1], [2, 2], [3, 3]]
    out = gray(path, wide.T, "TranslateY", -100.0)
    assert out[:4].tolist() == [[100, 100], [101, 101], [102, 102], [103, 103]] and (out[4:] == F).all()
    assert (gray(path, INDEX_4x4, "TranslateX", 100.0) == F).all()  # everything leaves a small image


@pytest.mark.parametrize("path", PATHS)
def test_rotate(path):
    # Pillow's rotate by +30 (counter-clockwise) about (2, 2): output (x, y) reads
    # floor(2 + cos30 u - sin30 v), floor(2 + sin30 u + cos30 v) with (u, v) = (x + 0.5 - 2, y + 0.5 - 2);
    # no coordinate lands within 0.04 of an integer, so the fixed-point rounding cannot matter. E.g.
    # (0, 0): (2 - 1.299 + 0.75, 2 - 0.75 - 1.299) = (1.45, -0.05) -> outside -> gray;
    # (1, 0): (2 - 0.433 + 0.75, 2 - 0.25 - 1.299) = (2.32, 0.45) -> input (2, 0) = 2.
    expected = [
        [F, 2, 3, F],
        [0, 11, 12, 23],
        [10, 21, 22, 33],
        [F, 30, 31, F],
    ]
    assert gray(path, INDEX_4x4, "Rotate", 30.0).tolist() == expected


@pytest.mark.parametrize("path", PATHS)
def test_cutout(path):
    def cutout(center):  # which pixels of a black 6-wide, 5-high image a pad-1 Cutout at `center` grays
        if path == "pil":
            out = np.asarray(ra.cutout_pil(Image.new("RGB", (6, 5)), 1, center))
        else:
            out = ra.cutout(torch.zeros(3, 5, 6, dtype=torch.uint8), 1, center).permute(1, 2, 0).numpy()
        return (out[..., 0] == F).astype(int).tolist()

    # pad 1 -> side 2; centre (2.7, 1.2): x0 = int(1.7) = 1, y0 = int(0.2) = 0, x1 = x0 + 2, y1 = y0 + 2,
    # both corners filled: a 3 x 3 square
    assert cutout((2.7, 1.2)) == [
        [0, 1, 1, 1, 0, 0],
        [0, 1, 1, 1, 0, 0],
        [0, 1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ]
    # at the left/top edge the square starts at 0 and keeps its size; at the right/bottom it is cut off
    assert cutout((0.4, 0.3)) == [[1, 1, 1, 0, 0, 0]] * 3 + [[0] * 6] * 2
    assert cutout((5.9, 4.8)) == [[0] * 6] * 3 + [[0, 0, 0, 0, 1, 1]] * 2
    # the op itself: pad 40 -> an 81-pixel square covers an 8 x 8 image wherever it lands
    out = run(path, np.zeros((8, 8), dtype=np.uint8), "Cutout", 40.0, generator=torch.Generator().manual_seed(0))
    assert (out == F).all()
    assert ra.cutout_box(224, 224, 40, (100.5, 30.2)) == (60, 0, 140, 80)  # 81 x 81 pixels


def test_cutout_centre_is_uniform_on_one_to_size():
    # upstream's np.random.uniform(width) is uniform(low=width, high=1.0): (1, width], x drawn before y
    np.random.seed(3)
    drawn = [ra.draw_cutout_center(224, 100) for _ in range(2000)]
    np.random.seed(3)
    expected = [(np.random.uniform(224), np.random.uniform(100)) for _ in range(2000)]
    assert drawn == expected
    generator = torch.Generator().manual_seed(0)
    xs, ys = zip(*(ra.draw_cutout_center(224, 100, generator) for _ in range(2000)))
    assert 1.0 < min(xs) < 1.5 and 223.5 < max(xs) <= 224.0 and 1.0 < min(ys) and max(ys) <= 100.0
    assert np.mean(xs) == pytest.approx(112.5, abs=3.0)


# --- the two paths agree ---------------------------------------------------------------------


def _images():
    rng = np.random.default_rng(0)
    yield rng.integers(0, 256, size=(13, 17, 3), dtype=np.uint8)  # odd sizes: centres at half pixels
    yield rng.integers(60, 90, size=(20, 9, 3), dtype=np.uint8)  # a narrow histogram
    yield (rng.integers(0, 4, size=(16, 16, 3)) * 60 + 10).astype(np.uint8)  # few levels
    yield rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8)  # the training size


@pytest.mark.parametrize("name", list(ra.OPS))
def test_pil_and_tensor_paths_give_the_same_pixels(name):
    magnitude, signed = ra.OPS[name]
    for pixels in _images():
        for m in (magnitude, -magnitude) if signed else (magnitude,):
            seeds = [torch.Generator().manual_seed(7) for _ in PATHS]  # Cutout draws its centre from it
            pil, tensor = (run(path, pixels, name, m, generator=g) for path, g in zip(PATHS, seeds))
            np.testing.assert_array_equal(pil, tensor)


def test_pil_and_tensor_rand_augment_agree_on_every_device():
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    pixels = next(iter(_images()))
    for seed in range(8):
        pil = ra.RandAugment(generator=torch.Generator().manual_seed(seed))(Image.fromarray(pixels))
        for device in devices:
            image = torch.from_numpy(pixels).permute(2, 0, 1).contiguous().to(device)
            tensor = ra.RandAugment(generator=torch.Generator().manual_seed(seed))(image)
            assert tensor.device.type == device
            np.testing.assert_array_equal(np.asarray(pil), tensor.permute(1, 2, 0).cpu().numpy())


# --- the draws -------------------------------------------------------------------------------


def test_two_ops_per_image(monkeypatch):
    calls = []
    monkeypatch.setattr(ra, "apply_op_tensor", lambda img, name, magnitude, fill, generator: calls.append(name) or img)
    augment = ra.RandAugment(generator=torch.Generator().manual_seed(0))
    for _ in range(5):
        augment(torch.zeros(3, 4, 4, dtype=torch.uint8))
    assert len(calls) == 10 and set(calls) <= set(ra.OPS)


def test_global_rng_draws_as_upstream():
    # upstream: torch.randint(16, (1,)) for the op, then torch.randint(2, (1,)) only for a signed op (1 = negate)
    torch.manual_seed(11)
    drawn = [ra.choose_op() for _ in range(200)]
    torch.manual_seed(11)
    names = list(ra.OPS)
    replayed = []
    for _ in range(200):
        name = names[int(torch.randint(16, (1,)))]
        magnitude, signed = ra.OPS[name]
        if signed and int(torch.randint(2, (1,))) == 1:
            magnitude = -magnitude
        replayed.append((name, magnitude))
    assert drawn == replayed


def test_ops_uniform_and_signs_negated_half_the_time():
    generator = torch.Generator().manual_seed(2024)
    draws = [ra.choose_op(generator) for _ in range(8000)]
    counts = collections.Counter(name for name, _ in draws)
    assert set(counts) == set(ra.OPS)
    expected = 8000 / 16
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 37.7  # the 0.1% tail of chi-square with 15 degrees of freedom
    signed = [(name, m) for name, m in draws if ra.OPS[name][1]]
    negative = sum(m < 0 for _, m in signed)
    assert abs(negative - len(signed) / 2) < 3.3 * math.sqrt(len(signed)) / 2  # binomial, 3.3 sigma
    assert all(m == ra.OPS[name][0] for name, m in draws if not ra.OPS[name][1])  # unsigned ops never flip
    assert all(abs(m) == ra.OPS[name][0] for name, m in signed)


def test_rejects_what_it_cannot_augment():
    with pytest.raises(ValueError, match=r"uint8 \(3, H, W\)"):
        ra.RandAugment()(torch.zeros(3, 4, 4))
    with pytest.raises(TypeError, match="PIL image or a uint8 tensor"):
        ra.RandAugment()(np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="unknown RandAugment op"):
        ra.apply_op_tensor(torch.zeros(3, 4, 4, dtype=torch.uint8), "Identity", 0.0)
