"""The ImageNet preprocessing of the reference's PyTorch workload (reference §4.4), in torchvision.transforms.v2.

Train and validation follow upstream's torchvision code: images are decoded by PIL,
scaled to [0, 1] by ToTensor, then normalised with the reference's 0-255 statistics
divided by 255 (which is what upstream's `Normalize(mean=[m / 255 ...])` does).
`transforms.v2` on a PIL image dispatches to the same PIL resampling as the v1 classes.

The ImageNet-v2 test split upstream goes through the JAX/TF pipeline
(`preprocess_for_eval`): a square centre crop of side int((224 / 256) * min(h, w)),
offsets ((h - side) + 1) // 2, a bicubic resize to 224 x 224 on 0-255 floats (no
antialiasing), and normalisation on the 0-255 scale. That is rebuilt here on tensors;
the one difference is the bicubic kernel (torch uses a = -0.75, TF's Keys kernel a = -0.5),
which moves pixel values by a few units of 255 near edges.

The geometric steps (crop, flip, resize) are defined once and run on either a PIL image
(the plain path: DataLoader workers decode with PIL) or a uint8 (3, H, W) tensor on any
device (workloads/imagenet/device_decode.py: the batch is decoded by nvJPEG on the GPU).
torchvision.transforms.v2 draws the same random numbers for both (the crop parameters
depend only on the image size) and resizes tensors with `antialias=True`, torch's
reimplementation of PIL's area-aware bilinear filter; the two agree to rounding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Tuple

if TYPE_CHECKING:
    import torch

CENTER_CROP_SIZE = 224
RESIZE_SIZE = 256
SCALE_RATIO_RANGE = (0.08, 1.0)  # RandomResizedCrop area range, as upstream's scale_ratio_range
ASPECT_RATIO_RANGE = (0.75, 4.0 / 3.0)
# The reference's train_mean / train_stddev, on the 0-255 pixel scale.
TRAIN_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
TRAIN_STDDEV = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def _to_normalised_tensor() -> list:
    import torch
    from torchvision.transforms import v2

    return [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),  # = ToTensor: uint8 -> [0, 1]
        v2.Normalize(mean=[m / 255.0 for m in TRAIN_MEAN], std=[s / 255.0 for s in TRAIN_STDDEV]),
    ]


def _train_steps(extra: Tuple[Callable, ...]) -> list:
    from torchvision.transforms import v2

    return [
        v2.RandomResizedCrop(CENTER_CROP_SIZE, scale=SCALE_RATIO_RANGE, ratio=ASPECT_RATIO_RANGE),
        v2.RandomHorizontalFlip(),  # p = 0.5
        *extra,
    ]


def _eval_steps() -> list:
    from torchvision.transforms import v2

    return [v2.Resize(RESIZE_SIZE), v2.CenterCrop(CENTER_CROP_SIZE)]


def train_transform(extra: Tuple[Callable, ...] = ()) -> Callable:
    """RandomResizedCrop(224) + horizontal flip (+ `extra`, e.g. RandAugment for ViT) + normalise."""
    from torchvision.transforms import v2

    return v2.Compose(_train_steps(extra) + _to_normalised_tensor())


def eval_transform() -> Callable:
    """Resize the short side to 256, centre-crop 224, normalise (validation and eval_train)."""
    from torchvision.transforms import v2

    return v2.Compose(_eval_steps() + _to_normalised_tensor())


def train_pixels_transform(extra: Tuple[Callable, ...] = ()) -> Callable:
    """uint8 (3, H, W) -> uint8 (3, 224, 224): train_transform's crop, flip and `extra`, not normalised.

    `extra` runs on the uint8 tensor on its device, so it must accept one (torchvision's v2
    transforms accept both a PIL image and a tensor, and can be passed to both paths).
    """
    from torchvision.transforms import v2

    return v2.Compose(_train_steps(extra))


def eval_pixels_transform() -> Callable:
    """uint8 (3, H, W) -> uint8 (3, 224, 224): eval_transform's resize and centre crop, not normalised."""
    from torchvision.transforms import v2

    return v2.Compose(_eval_steps())


def normalise(pixels: "torch.Tensor") -> "torch.Tensor":
    """(..., 3, H, W) on the 0-255 scale -> float32 (x - mean) / stddev, on the pixels' device."""
    import torch

    mean = torch.tensor(TRAIN_MEAN, device=pixels.device).view(3, 1, 1)
    std = torch.tensor(TRAIN_STDDEV, device=pixels.device).view(3, 1, 1)
    return (pixels.to(torch.float32) - mean) / std


def v2_crop_box(height: int, width: int) -> Tuple[int, int, int]:
    """(top, left, side) of the ImageNet-v2 test crop, as the reference's `_decode_and_center_crop`."""
    side = int((CENTER_CROP_SIZE / RESIZE_SIZE) * min(height, width))  # 0.875 is exact in float32 too
    return ((height - side) + 1) // 2, ((width - side) + 1) // 2, side


def imagenet_v2_pixels(pixels: "torch.Tensor") -> "torch.Tensor":
    """uint8 (3, H, W) on any device -> float32 (3, 224, 224) on 0-255, not normalised: the TF eval crop + bicubic."""
    import torch
    import torch.nn.functional as F

    top, left, side = v2_crop_box(pixels.shape[-2], pixels.shape[-1])
    crop = pixels[:, top : top + side, left : left + side].to(torch.float32)
    return F.interpolate(
        crop[None], size=(CENTER_CROP_SIZE, CENTER_CROP_SIZE), mode="bicubic", align_corners=False, antialias=False
    )[0]


class ImagenetV2TestTransform:
    """PIL image -> float32 (3, 224, 224): the reference's TF eval preprocessing of ImageNet-v2."""

    def __call__(self, image):
        from torchvision.transforms import v2

        return normalise(imagenet_v2_pixels(v2.functional.to_image(image.convert("RGB"))))


def imagenet_v2_transform() -> Callable:
    return ImagenetV2TestTransform()
