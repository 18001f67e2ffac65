"""RandAugment as the reference's PyTorch ViT workload applies it (reference §4.5).

Upstream: algoperf/workloads/imagenet_resnet/imagenet_pytorch/randaugment.py, used by
imagenet_resnet/imagenet_pytorch/workload.py as the last PIL step of the train transform
(after RandomResizedCrop and the horizontal flip, before ToTensor). Each image gets
NUM_OPS = 2 ops, each drawn uniformly from the 16 of OPS; a signed op has its magnitude
negated with probability 1/2. The magnitudes are fixed: they are the JAX reference's
level-to-argument values at magnitude 10 = its _MAX_LEVEL (rotate 30 degrees, shear 0.3,
translate 100 px, enhance factor 10/10 * 1.8 + 0.1 = 1.9, posterize 4 bits, solarize 256,
solarize-add 110, cutout 40). Geometric ops sample NEAREST and fill with gray 128.

Two paths compute the same pixels:
  * PIL images (`apply_op_pil`, what the DataLoader workers run): upstream's code path,
    torchvision.transforms.functional (v1) on PIL, plus upstream's own Cutout, Solarize and
    SolarizeAdd. Matches upstream exactly.
  * uint8 tensors (3, H, W) on any device (`apply_op_tensor`): torchvision's tensor kernels
    where they give PIL's pixels bit for bit (Brightness, Posterize, Equalize, Invert), and
    for the rest kernels written here that redo Pillow's integer and float32 arithmetic:
    its nearest-neighbour affine sampler (16.16 fixed point), its ITU-R 601 luma, its
    Image.blend rounding, its SMOOTH filter, ImageOps.autocontrast's lookup table.
    torchvision's tensor versions of those differ from PIL by one level (Color, Contrast,
    AutoContrast; Sharpness at some factors) or move pixels (the affine ops), so they are
    not used. The tests check both paths against each other and against hand-worked pixels.

Upstream quirks kept on purpose:
  * Solarize's threshold is 256, above every uint8 value, so the op leaves images unchanged.
  * Magnitudes live in torch tensors upstream and are read back with float(), so the
    fractional ones are float32 values: 0.3 arrives as 0.30000001192092896, 1.9 as
    1.899999976158142. They are stored that way here.
  * Cutout's centre is `np.random.uniform(width)`, i.e. low=width, high=1.0: uniform on
    (1, width], not [0, width). The box starts at int(max(0, centre - 40)) and ends at
    int(min(width, start + 80)), and PIL's rectangle includes both ends, so an unclipped
    patch is 81 x 81 pixels and a patch at the left or top edge is not shortened.

Randomness: with `generator=None` (upstream's behaviour) op and sign draws come from torch's
global RNG through the same torch.randint calls, in the same order, as upstream, and the
Cutout centre from numpy's global RNG (DataLoader seeds both per worker). An explicit
torch.Generator (CPU) instead drives all three, Cutout's centre with the same (1, width]
distribution. Do not hand one Generator to a transform that DataLoader workers copy: every
worker would then draw the same ops.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F_pil  # v1 functional: upstream's calls on PIL images
from torchvision.transforms.v2 import functional as F_tensor

NUM_OPS = 2  # ops per image, upstream's RandAugment(num_ops=2)
FILL = 128  # gray of the pixels the geometric ops uncover, and of the Cutout patch
SOLARIZE_ADD_THRESHOLD = 128  # SolarizeAdd brightens only pixels below this


def _float32(value: float) -> float:
    """`value` as upstream reads it back from a float32 torch tensor."""
    return float(np.float32(value))


# op name -> (magnitude, signed), in upstream's order: the drawn index selects from this order.
OPS: Dict[str, Tuple[float, bool]] = {
    "ShearX": (_float32(0.3), True),  # shear coefficient; the angle passed on is atan(0.3)
    "ShearY": (_float32(0.3), True),
    "TranslateX": (100.0, True),  # pixels
    "TranslateY": (100.0, True),
    "Rotate": (30.0, True),  # degrees
    "Brightness": (_float32(1.9), False),  # enhance factor: 1 keeps the image, 1.9 extrapolates
    "Color": (_float32(1.9), False),
    "Contrast": (_float32(1.9), False),
    "Sharpness": (_float32(1.9), False),
    "Posterize": (4.0, False),  # bits kept per channel
    "Solarize": (256.0, False),  # threshold (a no-op, see the module docstring)
    "SolarizeAdd": (110.0, False),  # added to pixels below 128
    "AutoContrast": (0.0, False),
    "Equalize": (0.0, False),
    "Invert": (0.0, False),
    "Cutout": (40.0, False),  # half the side of the gray square (upstream doubles it)
}

Affine = Tuple[float, float, float, float, float, float]  # Pillow's (a, b, c, d, e, f): output -> input


def choose_op(generator: Optional[torch.Generator] = None) -> Tuple[str, float]:
    """One (op name, signed magnitude), drawn as upstream draws it."""
    names = list(OPS)
    name = names[int(torch.randint(len(names), (1,), generator=generator).item())]
    magnitude, signed = OPS[name]
    if signed and bool(torch.randint(2, (1,), generator=generator)):  # upstream draws the sign only for signed ops
        magnitude = -magnitude
    return name, magnitude


def draw_cutout_center(width: int, height: int, generator: Optional[torch.Generator] = None) -> Tuple[float, float]:
    """Upstream's Cutout centre (x, y): np.random.uniform(size) is uniform on (1, size] (x drawn first)."""
    if generator is None:
        return float(np.random.uniform(width)), float(np.random.uniform(height))
    u = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
    return width + (1.0 - width) * u[0], height + (1.0 - height) * u[1]


def cutout_box(width: int, height: int, pad_size: int, center: Tuple[float, float]) -> Tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of upstream's Cutout square, both corners inclusive as PIL draws it."""
    side = 2 * pad_size  # upstream doubles pad_size "to match Jax"
    x0 = int(max(0, center[0] - side / 2.0))
    y0 = int(max(0, center[1] - side / 2.0))
    return x0, y0, int(min(width, x0 + side)), int(min(height, y0 + side))


# --- affine matrices (Pillow's convention: they map output pixels to input pixels) ----------


def affine_arguments(name: str, magnitude: float) -> Tuple[List[int], List[float], Optional[List[int]]]:
    """(translate, shear, center) of upstream's F.affine call for a shear or translate op (None: the image centre)."""
    if name in ("ShearX", "ShearY"):
        angle = math.degrees(math.atan(magnitude))  # upstream shears by the angle atan(magnitude), about the origin
        return [0, 0], ([angle, 0.0] if name == "ShearX" else [0.0, angle]), [0, 0]
    if name in ("TranslateX", "TranslateY"):
        shift = int(magnitude)
        return ([shift, 0] if name == "TranslateX" else [0, shift]), [0.0, 0.0], None
    raise ValueError(f"{name!r} is not a shear or translate op")


def pillow_rotate_matrix(width: int, height: int, angle: float) -> Affine:
    """The matrix Image.rotate(angle) hands to Image.transform (no expand, centre (w/2, h/2))."""
    cx, cy = width / 2, height / 2
    theta = -math.radians(angle % 360.0)
    a, b = round(math.cos(theta), 15), round(math.sin(theta), 15)  # Pillow rounds to 15 digits
    d, e = round(-math.sin(theta), 15), round(math.cos(theta), 15)
    # the offset keeps the centre in place: (c, f) = M (-cx, -cy) + (cx, cy)
    return a, b, (a * -cx + b * -cy + 0.0) + cx, d, e, (d * -cx + e * -cy + 0.0) + cy


def op_matrix(name: str, magnitude: float, width: int, height: int) -> Affine:
    """The Pillow matrix of a geometric op, as upstream's torchvision calls build it."""
    if name == "Rotate":
        return pillow_rotate_matrix(width, height, magnitude)
    translate, shear, center = affine_arguments(name, magnitude)
    # the (private) function F.affine itself calls on PIL images, so the matrices agree to the last bit
    matrix = F_pil._get_inverse_affine_matrix(center or [width * 0.5, height * 0.5], 0.0, translate, 1.0, shear)
    return tuple(matrix)  # type: ignore[return-value]


# --- tensor kernels that redo Pillow's arithmetic -------------------------------------------

_FIXED_POINT_LIMIT = 32768.0  # Pillow's 16.16 fixed-point sampler needs |coordinate| below 2**15


def _fix(value: float) -> int:
    """Pillow's FIX(): a double to 16.16 fixed point, rounded half up."""
    return math.floor(value * 65536.0 + 0.5)


def affine_nearest(img: torch.Tensor, matrix: Affine, fill: int = FILL) -> torch.Tensor:
    """Image.transform(AFFINE, matrix, NEAREST, fillcolor=fill) of Pillow, on a (C, H, W) tensor.

    Output pixel (x, y) reads input pixel floor(M (x + 0.5, y + 0.5)), as Pillow's
    libImaging/Geometry.c does: in doubles when the matrix only shifts and scales
    (ImagingScaleAffine), in 16.16 fixed point otherwise (affine_fixed). Pixels read from
    outside the input become `fill`.
    """
    a, b, c, d, e, f = matrix
    channels, height, width = img.shape
    x = torch.arange(width, device=img.device, dtype=torch.int64)[None, :]  # (1, W)
    y = torch.arange(height, device=img.device, dtype=torch.int64)[:, None]  # (H, 1)
    if b == 0 and d == 0:
        x_in = torch.floor(c + a * 0.5 + a * x.double()).long().expand(height, width)
        y_in = torch.floor(f + e * 0.5 + e * y.double()).long().expand(height, width)
    else:
        corners = ((0, 0), (width, height), (0, height), (width, 0))
        if any(max(abs(a * u + b * v + c), abs(d * u + e * v + f)) >= _FIXED_POINT_LIMIT for u, v in corners):
            raise ValueError(f"a {width} x {height} image is too large for Pillow's fixed-point affine sampler")
        # (x_in, y_in) = (xx >> 16, yy >> 16), xx = FIX(c + a/2 + b/2) + x FIX(a) + y FIX(b), likewise yy
        x_in = (_fix(c + a * 0.5 + b * 0.5) + x * _fix(a) + y * _fix(b)) >> 16  # (H, W)
        y_in = (_fix(f + d * 0.5 + e * 0.5) + x * _fix(d) + y * _fix(e)) >> 16
    inside = (x_in >= 0) & (x_in < width) & (y_in >= 0) & (y_in < height)
    index = y_in.clamp(0, height - 1) * width + x_in.clamp(0, width - 1)  # (H, W) into the flattened image
    sampled = img.reshape(channels, height * width)[:, index.reshape(-1)].reshape(channels, height, width)
    return torch.where(inside, sampled, torch.full((), fill, dtype=img.dtype, device=img.device))


def luma(img: torch.Tensor) -> torch.Tensor:
    """Pillow's RGB -> L conversion, (3, H, W) uint8 -> (H, W) int32: ITU-R 601-2 in 16-bit fixed point."""
    r, g, b = img.to(torch.int32).unbind(0)
    return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16


def blend(degenerate: torch.Tensor, img: torch.Tensor, factor: float) -> torch.Tensor:
    """Image.blend(degenerate, img, factor): float32 degenerate + factor (img - degenerate), clipped, truncated."""
    alpha = torch.tensor(factor, dtype=torch.float32, device=img.device)  # Pillow takes the factor as a C float
    difference = (img.to(torch.int32) - degenerate.to(torch.int32)).to(torch.float32)
    return (degenerate.to(torch.float32) + alpha * difference).clamp(0.0, 255.0).to(torch.uint8)


def adjust_color(img: torch.Tensor, factor: float) -> torch.Tensor:
    """ImageEnhance.Color: blend with the image's luma."""
    gray = luma(img).to(torch.uint8).expand_as(img)
    return blend(gray, img, factor)


def adjust_contrast(img: torch.Tensor, factor: float) -> torch.Tensor:
    """ImageEnhance.Contrast: blend with a flat image at the mean luma, rounded half up."""
    gray = luma(img)
    mean = torch.floor(gray.sum().double() / gray.numel() + 0.5).to(torch.uint8)
    return blend(mean.expand_as(img), img, factor)


def smooth(img: torch.Tensor) -> torch.Tensor:
    """ImageFilter.SMOOTH: the 3x3 kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13, rounded; border pixels kept."""
    pixels = img.to(torch.int32)
    height, width = img.shape[-2:]
    total = 4 * pixels[:, 1:-1, 1:-1]  # the centre's weight 5 = 4 + its share of the 3x3 sum below
    for dy in range(3):
        for dx in range(3):
            total = total + pixels[:, dy : dy + height - 2, dx : dx + width - 2]
    out = img.clone()
    out[:, 1:-1, 1:-1] = ((2 * total + 13) // 26).to(torch.uint8)  # round(total / 13); never a tie, 13 is odd
    return out


def adjust_sharpness(img: torch.Tensor, factor: float) -> torch.Tensor:
    """ImageEnhance.Sharpness: blend with the SMOOTH-filtered image."""
    return blend(smooth(img), img, factor)


def autocontrast(img: torch.Tensor) -> torch.Tensor:
    """ImageOps.autocontrast: per channel, stretch [min, max] to [0, 255] through Pillow's lookup table."""
    lo = img.amin(dim=(-2, -1)).double()[:, None]  # (3, 1)
    hi = img.amax(dim=(-2, -1)).double()[:, None]
    flat = hi <= lo  # Pillow leaves a one-valued channel alone
    scale = 255.0 / torch.where(flat, torch.ones_like(hi), hi - lo)
    levels = torch.arange(256, device=img.device, dtype=torch.float64)[None, :]  # (1, 256)
    table = (levels * scale + -lo * scale).clamp(0.0, 255.0).floor()  # Pillow: int(ix * scale + offset), clipped
    table = torch.where(flat, levels, table).to(torch.uint8)  # (3, 256)
    return torch.gather(table, 1, img.reshape(3, -1).long()).reshape(img.shape)


def solarize(img: torch.Tensor, threshold: float) -> torch.Tensor:
    """Invert the pixels at or above `threshold` (upstream's solarize)."""
    return torch.where(img < threshold, img, 255 - img)


def solarize_add(img: torch.Tensor, addition: int) -> torch.Tensor:
    """Add `addition` (clipped to [0, 255]) to the pixels below 128 (upstream's solarize_add)."""
    added = (img.to(torch.int32) + addition).clamp(0, 255).to(torch.uint8)
    return torch.where(img < SOLARIZE_ADD_THRESHOLD, added, img)


def cutout(img: torch.Tensor, pad_size: int, center: Tuple[float, float], fill: int = FILL) -> torch.Tensor:
    """Upstream's Cutout: a gray square over `cutout_box` (corners inclusive)."""
    height, width = img.shape[-2:]
    x0, y0, x1, y1 = cutout_box(width, height, pad_size, center)
    out = img.clone()
    out[..., y0 : y1 + 1, x0 : x1 + 1] = fill
    return out


GEOMETRIC_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


def apply_op_tensor(
    img: torch.Tensor, name: str, magnitude: float, fill: int = FILL, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """One op on a uint8 (3, H, W) tensor; the same pixels as `apply_op_pil` on the same image."""
    if name in GEOMETRIC_OPS:
        return affine_nearest(img, op_matrix(name, magnitude, img.shape[-1], img.shape[-2]), fill)
    if name == "Brightness":
        return F_tensor.adjust_brightness(img, magnitude)
    if name == "Color":
        return adjust_color(img, magnitude)
    if name == "Contrast":
        return adjust_contrast(img, magnitude)
    if name == "Sharpness":
        return adjust_sharpness(img, magnitude)
    if name == "Posterize":
        return F_tensor.posterize(img, int(magnitude))
    if name == "Solarize":
        return solarize(img, magnitude)  # torchvision's refuses a threshold above 255
    if name == "SolarizeAdd":
        return solarize_add(img, int(magnitude))
    if name == "AutoContrast":
        return autocontrast(img)
    if name == "Equalize":
        return F_tensor.equalize(img)
    if name == "Invert":
        return F_tensor.invert(img)
    if name == "Cutout":
        return cutout(img, int(magnitude), draw_cutout_center(img.shape[-1], img.shape[-2], generator), fill)
    raise ValueError(f"unknown RandAugment op {name!r}; expected one of {list(OPS)}")


# --- the PIL path: upstream's calls ---------------------------------------------------------


def _on_array(img: Image.Image, op: Callable[[torch.Tensor], torch.Tensor]) -> Image.Image:
    """Run an elementwise tensor op on a PIL image's pixels."""
    return Image.fromarray(op(torch.from_numpy(np.array(img))).numpy())


def cutout_pil(img: Image.Image, pad_size: int, center: Tuple[float, float], fill: int = FILL) -> Image.Image:
    out = img.copy()
    ImageDraw.Draw(out).rectangle(cutout_box(img.width, img.height, pad_size, center), (fill,) * len(img.getbands()))
    return out


def apply_op_pil(
    img: Image.Image, name: str, magnitude: float, fill: int = FILL, generator: Optional[torch.Generator] = None
) -> Image.Image:
    """One op on a PIL image, through the torchvision calls upstream makes."""
    nearest = InterpolationMode.NEAREST
    if name in ("ShearX", "ShearY", "TranslateX", "TranslateY"):
        translate, shear, center = affine_arguments(name, magnitude)
        return F_pil.affine(img, 0.0, translate, 1.0, shear, interpolation=nearest, fill=fill, center=center)
    if name == "Rotate":
        return F_pil.rotate(img, magnitude, interpolation=nearest, fill=fill)
    if name == "Brightness":
        return F_pil.adjust_brightness(img, magnitude)
    if name == "Color":
        return F_pil.adjust_saturation(img, magnitude)
    if name == "Contrast":
        return F_pil.adjust_contrast(img, magnitude)
    if name == "Sharpness":
        return F_pil.adjust_sharpness(img, magnitude)
    if name == "Posterize":
        return F_pil.posterize(img, int(magnitude))
    if name == "Solarize":
        return _on_array(img, lambda pixels: solarize(pixels, magnitude))
    if name == "SolarizeAdd":
        return _on_array(img, lambda pixels: solarize_add(pixels, int(magnitude)))
    if name == "AutoContrast":
        return F_pil.autocontrast(img)
    if name == "Equalize":
        return F_pil.equalize(img)
    if name == "Invert":
        return F_pil.invert(img)
    if name == "Cutout":
        return cutout_pil(img, int(magnitude), draw_cutout_center(img.width, img.height, generator), fill)
    raise ValueError(f"unknown RandAugment op {name!r}; expected one of {list(OPS)}")


ImageLike = Union[Image.Image, torch.Tensor]


class RandAugment:
    """`num_ops` random ops per image, on a PIL image or a uint8 (3, H, W) tensor (returns the same kind).

    For the train transform: `transforms.train_transform(extra=(RandAugment(),))`.
    """

    def __init__(self, num_ops: int = NUM_OPS, fill: int = FILL, generator: Optional[torch.Generator] = None) -> None:
        self.num_ops = num_ops
        self.fill = fill
        self.generator = generator

    def __call__(self, img: ImageLike) -> ImageLike:
        if isinstance(img, torch.Tensor):
            if img.dtype != torch.uint8 or img.dim() != 3 or img.shape[0] != 3:
                raise ValueError(
                    f"RandAugment takes a uint8 (3, H, W) tensor, got {img.dtype} {tuple(img.shape)}; "
                    "convert with v2.functional.to_image and keep the 0-255 range"
                )
            apply: Callable = apply_op_tensor
        elif isinstance(img, Image.Image):
            apply = apply_op_pil
        else:
            raise TypeError(f"RandAugment takes a PIL image or a uint8 tensor, got {type(img).__name__}")
        for _ in range(self.num_ops):
            name, magnitude = choose_op(self.generator)
            img = apply(img, name, magnitude, self.fill, self.generator)
        return img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_ops={self.num_ops}, fill={self.fill})"
