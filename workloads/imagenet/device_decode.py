"""ImageNet decode on the training device: workers only read file bytes, the batch is decoded where it trains.

Why: the reference's PyTorch pipeline decodes and augments every image with PIL in
DataLoader workers. ResNet-50 on the 4 x A100 hosts of record takes about 3,400 images/s,
850 per GPU, and those hosts have 6 vCPUs per GPU, one of them running the training
process. PIL's decode + RandomResizedCrop takes about 7 ms of one core per 0.28-megapixel
image (benchmarks/imagenet_input_pipeline.py), about 6 cores per A100, most of it the decode:
the CPUs, not the GPU, can set the pace. Here the DataLoader workers only read
each JPEG's bytes, and the main process decodes the whole batch with one
`torchvision.io.decode_jpeg(list, device=...)` call: batched nvJPEG on a CUDA device,
libjpeg-turbo on the CPU (the same call, so the path runs, and is tested, without a GPU).

Semantics are the PIL path's (workloads/imagenet/transforms.py): the same torchvision v2
crop, flip and resize steps run on the decoded uint8 tensors on the device, drawing their
random numbers from torch's global RNG in the same order per image (crop parameters, then
the flip, then any `extra` ops), and normalisation uses the same 0-255 statistics. What can
differ is rounding: nvJPEG's IDCT and chroma upsampling against libjpeg-turbo's, and torch's
antialiased bilinear filter against PIL's fixed-point one (tests/workloads/
test_imagenet_device_decode.py bounds both).

Not every file suits the device decoder: ImageNet's train set holds a PNG named .JPEG and
22 CMYK JPEGs (the lists in TensorFlow's build_imagenet_data.py), and torchvision's own
nvJPEG tests mark CMYK as unsupported. So each file's
JPEG frame header is read on the CPU first (a few bytes), and only 1- and 3-component JPEGs
go to decode_jpeg; the rest, and any file the device decoder rejects, are decoded on the CPU
by torchvision.io.decode_image (libpng; libjpeg-turbo converts CMYK to RGB), PIL last.

The batches (keys, dtypes, shapes, padding rows, weights, row order) come out of
input_pipeline's train_iterator and eval_iterator, which call a BatchDecoder in place of
the PIL transform; select the path with build_input_iterator(decode="auto" | "cpu" | "device").
Since the random draws happen in the main process, they share torch's global RNG with the
rest of training (upstream's workers each hold their own seeded copy).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Tuple

from workloads.imagenet import transforms

if TYPE_CHECKING:
    import torch


def read_encoded(path: str) -> "torch.Tensor":
    """The file's bytes as a uint8 1-D tensor: all a DataLoader worker does on this path."""
    from torchvision.io import read_file

    return read_file(path)


Packed = Tuple["torch.Tensor", "torch.Tensor"]  # (a batch's files end to end, uint8; their byte lengths, int64)


def collate_encoded(samples: Sequence[Tuple["torch.Tensor", int]]) -> Tuple[Packed, "torch.Tensor"]:
    """((the batch's files end to end, their lengths), int64 targets): the DataLoader's collate_fn.

    One fresh buffer per batch crosses from a worker as one shared-memory segment; a list of
    read_file's tensors cannot cross at all (their storage counts as shared already, and the
    worker's pickler fails to duplicate a file descriptor it does not have).
    """
    import torch

    encoded = [data for data, _ in samples]
    lengths = torch.tensor([len(data) for data in encoded], dtype=torch.int64)
    return (torch.cat(encoded), lengths), torch.tensor([target for _, target in samples], dtype=torch.int64)


def unpack(packed: Packed) -> List["torch.Tensor"]:
    """The encoded images of a collated batch, as views of its buffer."""
    flat, lengths = packed
    return list(flat.split(lengths.tolist()))


def decode_on_cpu(encoded: "torch.Tensor") -> "torch.Tensor":
    """uint8 (3, H, W) RGB of any image file: torchvision's decoders (JPEG, PNG, ...), then PIL."""
    from torchvision.io import ImageReadMode, decode_image

    try:
        return decode_image(encoded, mode=ImageReadMode.RGB)
    except RuntimeError:
        from PIL import Image
        from torchvision.transforms.v2.functional import pil_to_tensor

        with Image.open(io.BytesIO(encoded.numpy().tobytes())) as image:
            return pil_to_tensor(image.convert("RGB"))


# Start-of-frame markers (baseline, extended, progressive, lossless, arithmetic): C0-CF but
# C4 (Huffman tables), C8 (reserved) and CC (arithmetic conditioning), per ITU T.81 table B.1.
_START_OF_FRAME = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn and TEM carry no length field


def jpeg_components(encoded: "torch.Tensor") -> Optional[int]:
    """Colour components of a JPEG (1 grey, 3 YCbCr, 4 CMYK/YCCK) from its frame header; None: not a JPEG."""
    data = memoryview(encoded.numpy())
    size = len(data)
    if size < 4 or data[0] != 0xFF or data[1] != 0xD8:  # SOI
        return None
    position = 2
    while position + 9 < size:
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
        elif marker in _START_OF_FRAME:
            return data[position + 9]  # FF Cn, length (2), precision (1), height (2), width (2), components
        elif marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        elif marker in _STANDALONE:
            position += 2
        else:
            position += 2 + (data[position + 2] << 8 | data[position + 3])
    return None


def _rejected(error: RuntimeError) -> bool:
    """A decoder's refusal of a file, as opposed to the device running out of memory (which must surface)."""
    import torch

    return not isinstance(error, torch.OutOfMemoryError)


def decode_images(encoded: List["torch.Tensor"], device: "torch.device") -> List["torch.Tensor"]:
    """uint8 (3, H, W) RGB images on `device`, in order: grey and colour JPEGs in one batched decode_jpeg."""
    from torchvision.io import ImageReadMode, decode_jpeg

    images: List[Optional["torch.Tensor"]] = [None] * len(encoded)
    batch = [i for i, data in enumerate(encoded) if jpeg_components(data) in (1, 3)]
    if batch:
        try:
            decoded = decode_jpeg([encoded[i] for i in batch], mode=ImageReadMode.RGB, device=device)
        except RuntimeError as error:  # the batched call returns nothing when any image fails
            if not _rejected(error):
                raise
            decoded = [_decode_one(encoded[i], device) for i in batch]
        for i, image in zip(batch, decoded):
            images[i] = image
    return [image if image is not None else decode_on_cpu(data).to(device) for image, data in zip(images, encoded)]


def _decode_one(encoded: "torch.Tensor", device: "torch.device") -> "torch.Tensor":
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        return decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)
    except RuntimeError as error:
        if not _rejected(error):
            raise
        return decode_on_cpu(encoded).to(device)


def pixels_transform(split: str, extra_train_ops: Tuple[Callable, ...] = ()) -> Callable:
    """The split's per-image step on a uint8 (3, H, W) tensor -> (3, 224, 224) on the 0-255 scale."""
    if split == "train":
        return transforms.train_pixels_transform(extra_train_ops)
    if split == "test":
        return transforms.imagenet_v2_pixels  # float: the bicubic resize is not rounded, as the reference's TF path
    return transforms.eval_pixels_transform()


class BatchDecoder:
    """A collated batch of encoded images -> normalised float32 (n, 3, 224, 224) on `device`.

    extra_train_ops: per-image ops after the crop and flip, before normalisation (the ViT
    workload's RandAugment), each taking a uint8 (3, 224, 224) tensor on `device`; the
    counterpart of transforms.train_transform(extra=...). Used for the train split only.
    """

    collate = staticmethod(collate_encoded)  # the DataLoader's collate_fn (a module function, so workers can pickle it)

    def __init__(self, split: str, device: "torch.device", extra_train_ops: Tuple[Callable, ...] = ()) -> None:
        self.device = device
        self.pixels = pixels_transform(split, extra_train_ops)

    def __call__(self, packed: Packed) -> "torch.Tensor":
        return self.decode(unpack(packed))

    def decode(self, encoded: List["torch.Tensor"]) -> "torch.Tensor":
        """The same from a list of encoded images (uint8 1-D CPU tensors)."""
        import torch

        images = decode_images(encoded, self.device)
        return transforms.normalise(torch.stack([self.pixels(image) for image in images]))
