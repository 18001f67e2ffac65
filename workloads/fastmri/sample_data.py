"""Small fastMRI-layout volumes made from a real MRI scan, for tests, smoke runs and the benchmark.

No package ships raw k-space, so it is simulated from real anatomy: coronal and sagittal
slices of the Colin27 T1 scan that Debian's `mricron-data` installs
(/usr/share/mricron/templates/ch2better.nii.gz, 0.5 mm voxels). Each slice is placed in the
middle of a 640 x W image (the read-out direction is oversampled twice, as in the knee scans,
so the anatomy fills the central 320 rows), scaled to the real files' intensities, given a
little complex Gaussian noise, and transformed with the centred orthonormal 2-D FFT:
    kspace = fftshift(fft2(ifftshift(image), norm="ortho"))
`reconstruction_esc` is then the magnitude of the centre 320 x 320 crop of the inverse
transform of that k-space, exactly how the emulated single-coil target relates to the
k-space in the real files. Each volume is a run of slices 3 mm apart.

The files have the official single-coil layout: `kspace` (slices, 640, W) complex64,
`reconstruction_esc` (slices, 320, 320) float32, an `ismrmrd_header` with the matrix sizes,
and the attributes `max`, `norm`, `acquisition` and `patient_id`. They are packed like the
official release: knee_singlecoil_train.tar.xz holding singlecoil_train/file*.h5 and
knee_singlecoil_val.tar.xz holding singlecoil_val/file*.h5 (or left unpacked with --unpacked).

Splitting a small val set: the reference's rule (first 100 val volumes validation, the rest
test) would leave the test split empty below 101 volumes, and 101 volumes of even one slice
are 190 MB of k-space. The preparation command therefore splits a subset with at most 100
val volumes in half by name order (see prepare.py); the default 4 val volumes give 2
validation and 2 test volumes.

Usage: python -m workloads.fastmri.sample_data --raw-dir RAW [--train-volumes 3] [--val-volumes 4] [--slices 3]
       python -m workloads.fastmri.prepare --data-dir DIR --raw-dir RAW --subset
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import shutil
import sys
import tarfile
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from workloads.fastmri.input_pipeline import CROP

SCAN_PATH = Path("/usr/share/mricron/templates/ch2better.nii.gz")
INSTALL_HINT = "sudo apt-get install mricron-data"
READOUT = 640  # k-space rows of every knee scan
WIDTHS = (368, 372, 356, 368)  # k-space columns, cycled over volumes (the knee scans vary; 368 is the commonest)
PEAK = 3e-4  # about the largest reconstruction_esc value of a real knee volume
NOISE = 0.01  # image-domain noise std, as a share of PEAK
SLICE_SPACING = 6  # voxels between slices of a volume: 3 mm at 0.5 mm voxels, like the knee scans
ARCHIVES = {"train": ("knee_singlecoil_train.tar.xz", "singlecoil_train"), "val": ("knee_singlecoil_val.tar.xz", "singlecoil_val")}
FIRST_FILE_NUMBER = {"train": 1_000_001, "val": 1_000_000}  # train and val file names interleave, as the release's


class MissingScanError(RuntimeError):
    """The real MRI scan is not installed."""


def load_scan(path: Optional[Path] = None) -> np.ndarray:
    """The T1 volume as float32 in RAS order (x right, y anterior, z superior)."""
    return _load_scan(Path(path) if path is not None else SCAN_PATH)


@functools.lru_cache(maxsize=1)
def _load_scan(path: Path) -> np.ndarray:
    if not path.is_file():
        raise MissingScanError(f"{path} is missing; the sample fastMRI data is made from it. Install it with: {INSTALL_HINT}")
    try:
        import nibabel
    except ModuleNotFoundError:
        raise MissingScanError("reading the MRI scan needs nibabel: pip install nibabel") from None
    return np.asarray(nibabel.load(str(path)).dataobj, dtype=np.float32)


def scan_available() -> bool:
    try:
        import nibabel  # noqa: F401
    except ModuleNotFoundError:
        return False
    return SCAN_PATH.is_file()


def _fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """`image` centred on a zero canvas of height x width (cropped where larger)."""
    canvas = np.zeros((height, width), dtype=np.float32)
    rows, cols = min(height, image.shape[0]), min(width, image.shape[1])
    top, left = (image.shape[0] - rows) // 2, (image.shape[1] - cols) // 2
    r0, c0 = (height - rows) // 2, (width - cols) // 2
    canvas[r0 : r0 + rows, c0 : c0 + cols] = image[top : top + rows, left : left + cols]
    return canvas


def anatomy_slices(scan: np.ndarray, volume: int, num_volumes: int, num_slices: int) -> List[np.ndarray]:
    """Slices of one simulated volume: coronal for even volume numbers, sagittal for odd ones,
    superior side up; the volumes' slabs are spread over the head."""
    sagittal = volume % 2 == 1
    axis = 0 if sagittal else 1
    extent = scan.shape[axis]
    span = (num_slices - 1) * SLICE_SPACING
    low, high = int(extent * 0.25), int(extent * 0.75) - span
    start = low + (high - low) * volume // max(num_volumes - 1, 1)
    slices = []
    for k in range(num_slices):
        position = start + k * SLICE_SPACING
        plane = scan[position, :, :] if sagittal else scan[:, position, :]  # (y or x, z)
        slices.append(plane.T[::-1])  # rows: superior to inferior
    return slices


def simulate_volume(images: Sequence[np.ndarray], width: int, rng: np.random.Generator) -> dict:
    """k-space, target and attributes of one volume from its anatomy slices."""
    peak = max(float(image.max()) for image in images) or 1.0
    kspace = np.empty((len(images), READOUT, width), dtype=np.complex64)
    for index, image in enumerate(images):
        picture = _fit(image, READOUT, width) * np.float32(PEAK / peak)
        noise = rng.normal(0.0, NOISE * PEAK, size=(2, READOUT, width))
        complex_image = picture + noise[0] + 1j * noise[1]
        kspace[index] = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(complex_image), norm="ortho"))
    image = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    row, col = (READOUT - CROP) // 2, (width - CROP) // 2
    target = np.abs(image[:, row : row + CROP, col : col + CROP]).astype(np.float32)
    return {"kspace": kspace, "reconstruction_esc": target, "max": float(target.max()), "norm": float(np.linalg.norm(target))}


def ismrmrd_header(width: int, num_slices: int) -> bytes:
    """A minimal ISMRMRD XML header: the encoded and reconstructed matrix sizes the real files carry."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">\n'
        "  <encoding>\n"
        f"    <encodedSpace><matrixSize><x>{READOUT}</x><y>{width}</y><z>1</z></matrixSize>"
        "<fieldOfView_mm><x>280</x><y>140</y><z>3</z></fieldOfView_mm></encodedSpace>\n"
        f"    <reconSpace><matrixSize><x>{CROP}</x><y>{CROP}</y><z>1</z></matrixSize>"
        "<fieldOfView_mm><x>140</x><y>140</y><z>3</z></fieldOfView_mm></reconSpace>\n"
        f"    <encodingLimits><kspace_encoding_step_1><minimum>0</minimum><maximum>{width - 1}</maximum>"
        f"<center>{width // 2}</center></kspace_encoding_step_1>"
        f"<slice><minimum>0</minimum><maximum>{num_slices - 1}</maximum><center>0</center></slice></encodingLimits>\n"
        "  </encoding>\n"
        "</ismrmrdHeader>\n"
    ).encode("utf-8")


def write_volume(path: Path, volume: dict, patient: str) -> Path:
    import h5py

    with h5py.File(path, "w") as handle:
        handle.create_dataset("kspace", data=volume["kspace"])
        handle.create_dataset("reconstruction_esc", data=volume["reconstruction_esc"])
        handle.create_dataset("ismrmrd_header", data=ismrmrd_header(volume["kspace"].shape[2], len(volume["kspace"])))
        handle.attrs["max"] = volume["max"]
        handle.attrs["norm"] = volume["norm"]
        handle.attrs["acquisition"] = "CORPD_FBK"
        handle.attrs["patient_id"] = hashlib.sha256(patient.encode()).hexdigest()
    return path


def write_split(folder: Path, part: str, num_volumes: int, num_slices: int, seed: int, volume_offset: int, total: int) -> List[Path]:
    """`num_volumes` files in `folder`; `volume_offset`/`total` place their slabs among all sample volumes."""
    scan = load_scan()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(num_volumes):
        volume = volume_offset + number
        rng = np.random.default_rng((seed, volume))
        images = anatomy_slices(scan, volume, total, num_slices)
        simulated = simulate_volume(images, WIDTHS[volume % len(WIDTHS)], rng)
        name = f"file{FIRST_FILE_NUMBER[part] + 2 * number}.h5"
        paths.append(write_volume(folder / name, simulated, f"{part}-{seed}-{number}"))
    return paths


def pack(folder: Path, archive: Path) -> Path:
    """A .tar.xz holding `folder` by its name, as the official archives hold singlecoil_<part>/."""
    partial = archive.with_name(archive.name + ".partial")
    # Light compression: simulated k-space is noise-like and barely shrinks at higher presets.
    with tarfile.open(partial, "w:xz", preset=1) as tar:
        tar.add(folder, arcname=folder.name)
    partial.replace(archive)
    return archive


def write_raw_dir(
    raw_dir: Path, train_volumes: int = 3, val_volumes: int = 4, slices: int = 3, seed: int = 0, unpacked: bool = False
) -> Path:
    """The two official archives (or, `unpacked`, the folders they unpack to) under `raw_dir`."""
    if train_volumes < 1 or val_volumes < 2 or slices < 1:
        raise ValueError("need at least 1 train volume, 2 val volumes (validation and test) and 1 slice per volume")
    raw_dir.mkdir(parents=True, exist_ok=True)
    total = train_volumes + val_volumes
    for part, count, offset in (("train", train_volumes, 0), ("val", val_volumes, train_volumes)):
        archive_name, folder_name = ARCHIVES[part]
        folder = raw_dir / folder_name
        if folder.exists():
            shutil.rmtree(folder)
        write_split(folder, part, count, slices, seed, offset, total)
        if not unpacked:
            pack(folder, raw_dir / archive_name)
            shutil.rmtree(folder)
    return raw_dir


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workloads.fastmri.sample_data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--raw-dir", required=True, help="where the archives (or unpacked folders) go")
    parser.add_argument("--train-volumes", type=int, default=3, help="volumes in knee_singlecoil_train (default 3)")
    parser.add_argument("--val-volumes", type=int, default=4, help="volumes in knee_singlecoil_val, at least 2 (default 4)")
    parser.add_argument("--slices", type=int, default=3, help="slices per volume (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    parser.add_argument("--unpacked", action="store_true", help="leave singlecoil_train/ and singlecoil_val/ unpacked")
    args = parser.parse_args(argv)
    try:
        raw_dir = write_raw_dir(Path(args.raw_dir).expanduser(), args.train_volumes, args.val_volumes, args.slices, args.seed, args.unpacked)
    except (MissingScanError, ValueError) as error:
        print(f"fastMRI sample data: {error}", file=sys.stderr)
        return 1
    print(f"fastMRI sample data written to {raw_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
