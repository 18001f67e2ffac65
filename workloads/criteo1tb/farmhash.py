"""FarmHash Fingerprint64, vectorised with numpy over many byte strings of one length.

TensorFlow's `tf.strings.to_hash_bucket_fast(s, n)` is `Fingerprint64(s) mod n`, and
FarmHash's `Fingerprint64` is its `farmhashna::Hash64`. The reference Criteo pipeline
hashes every categorical value that way (reference §4.2), so reproducing its bucket
ids needs the exact function. The constants and the order of the mixing steps below
are FarmHash's (Geoff Pike, Google; MIT licence); the code is a numpy transcription in
which every step works on a column of uint64 words, one per string.

All arithmetic is on uint64 *arrays*, never numpy scalars: array arithmetic wraps
modulo 2**64 silently, exactly like C's unsigned arithmetic.
"""

from __future__ import annotations

from typing import Tuple, Union

import numpy as np

# FarmHash's primes.
K0 = np.uint64(0xC3A5C85C97CB3127)
K1 = np.uint64(0xB492B66FBE98F273)
K2 = np.uint64(0x9AE16A3B2F90404F)
_LONG_SEED = 81  # farmhashna::Hash64's seed for strings over 64 bytes
_MASK64 = (1 << 64) - 1

Words = np.ndarray  # (m,) uint64


def _fetch64(strings: np.ndarray, offset: int) -> Words:
    """Little-endian 64-bit word at `offset` of every row."""
    return np.ascontiguousarray(strings[:, offset : offset + 8]).view("<u8").reshape(-1).astype(np.uint64, copy=False)


def _fetch32(strings: np.ndarray, offset: int) -> Words:
    return np.ascontiguousarray(strings[:, offset : offset + 4]).view("<u4").reshape(-1).astype(np.uint64)


def _rotate(value: Words, shift: int) -> Words:
    return value if shift == 0 else (value >> shift) | (value << (64 - shift))


def _shift_mix(value: Words) -> Words:
    return value ^ (value >> 47)


def _hash_len16(u: Words, v: Words, mul: Union[Words, np.uint64]) -> Words:
    a = (u ^ v) * mul
    a ^= a >> 47
    b = (v ^ a) * mul
    b ^= b >> 47
    return b * mul


def _len_0_to_16(strings: np.ndarray, length: int) -> Words:
    count = strings.shape[0]
    mul = K2 + np.uint64(2 * length)
    if length >= 8:
        a = _fetch64(strings, 0) + K2
        b = _fetch64(strings, length - 8)
        c = _rotate(b, 37) * mul + a
        d = (_rotate(a, 25) + b) * mul
        return _hash_len16(c, d, mul)
    if length >= 4:
        a = _fetch32(strings, 0)
        return _hash_len16(np.uint64(length) + (a << 3), _fetch32(strings, length - 4), mul)
    if length > 0:
        first = strings[:, 0].astype(np.uint64)
        middle = strings[:, length >> 1].astype(np.uint64)
        last = strings[:, length - 1].astype(np.uint64)
        y = first + (middle << 8)
        z = np.uint64(length) + (last << 2)
        return _shift_mix((y * K2) ^ (z * K0)) * K2
    return np.full(count, K2, dtype=np.uint64)


def _len_17_to_32(strings: np.ndarray, length: int) -> Words:
    mul = K2 + np.uint64(2 * length)
    a = _fetch64(strings, 0) * K1
    b = _fetch64(strings, 8)
    c = _fetch64(strings, length - 8) * mul
    d = _fetch64(strings, length - 16) * K2
    return _hash_len16(_rotate(a + b, 43) + _rotate(c, 30) + d, a + _rotate(b + K2, 18) + c, mul)


def _len_33_to_64(strings: np.ndarray, length: int) -> Words:
    mul = K2 + np.uint64(2 * length)
    a = _fetch64(strings, 0) * K2
    b = _fetch64(strings, 8)
    c = _fetch64(strings, length - 8) * mul
    d = _fetch64(strings, length - 16) * K2
    y = _rotate(a + b, 43) + _rotate(c, 30) + d
    z = _hash_len16(y, a + _rotate(b + K2, 18) + c, mul)
    e = _fetch64(strings, 16) * mul
    f = _fetch64(strings, 24)
    g = (y + _fetch64(strings, length - 32)) * mul
    h = (z + _fetch64(strings, length - 24)) * mul
    return _hash_len16(_rotate(e + f, 43) + _rotate(g, 30) + h, e + _rotate(f + a, 18) + g, mul)


def _weak_hash_len32_with_seeds(strings: np.ndarray, offset: int, a: Words, b: Words) -> Tuple[Words, Words]:
    """16 bytes of state from the 32 bytes at `offset` and two seeds (FarmHash's quick mixer)."""
    w, x = _fetch64(strings, offset), _fetch64(strings, offset + 8)
    y, z = _fetch64(strings, offset + 16), _fetch64(strings, offset + 24)
    a = a + w
    b = _rotate(b + a + z, 21)
    c = a
    a = a + x + y
    b = b + _rotate(a, 44)
    return a + z, b + c


def _len_over_64(strings: np.ndarray, length: int) -> Words:
    count = strings.shape[0]

    def full(value: int) -> Words:
        return np.full(count, value & _MASK64, dtype=np.uint64)

    k1, k2 = int(K1), int(K2)
    y_start = (_LONG_SEED * k1 + 113) & _MASK64
    mixed = (y_start * k2 + 113) & _MASK64
    z_start = ((mixed ^ (mixed >> 47)) * k2) & _MASK64  # ShiftMix(y * k2 + 113) * k2
    x, y, z = full(_LONG_SEED), full(y_start), full(z_start)
    v0, v1, w0, w1 = full(0), full(0), full(0), full(0)
    x = x * K2 + _fetch64(strings, 0)

    # 64-byte blocks; the tail (1 to 64 bytes) is handled through the last 64 bytes of the string.
    end = ((length - 1) // 64) * 64
    for offset in range(0, end, 64):
        x = _rotate(x + y + v0 + _fetch64(strings, offset + 8), 37) * K1
        y = _rotate(y + v1 + _fetch64(strings, offset + 48), 42) * K1
        x ^= w1
        y = y + v0 + _fetch64(strings, offset + 40)
        z = _rotate(z + w0, 33) * K1
        v0, v1 = _weak_hash_len32_with_seeds(strings, offset, v1 * K1, x + w0)
        w0, w1 = _weak_hash_len32_with_seeds(strings, offset + 32, z + w1, y + _fetch64(strings, offset + 16))
        x, z = z, x
    mul = K1 + ((z & np.uint64(0xFF)) << 1)
    last64 = length - 64
    w0 = w0 + np.uint64((length - 1) & 63)
    v0 = v0 + w0
    w0 = w0 + v0
    x = _rotate(x + y + v0 + _fetch64(strings, last64 + 8), 37) * mul
    y = _rotate(y + v1 + _fetch64(strings, last64 + 48), 42) * mul
    x ^= w1 * np.uint64(9)
    y = y + v0 * np.uint64(9) + _fetch64(strings, last64 + 40)
    z = _rotate(z + w0, 33) * mul
    v0, v1 = _weak_hash_len32_with_seeds(strings, last64, v1 * mul, x + w0)
    w0, w1 = _weak_hash_len32_with_seeds(strings, last64 + 32, z + w1, y + _fetch64(strings, last64 + 16))
    x, z = z, x
    return _hash_len16(_hash_len16(v0, w0, mul) + _shift_mix(y) * K0 + z, _hash_len16(v1, w1, mul) + x, mul)


def fingerprint64(strings: np.ndarray) -> np.ndarray:
    """FarmHash Fingerprint64 of each row of an (m, length) uint8 array of equal-length strings; (m,) uint64."""
    strings = np.ascontiguousarray(strings, dtype=np.uint8)
    if strings.ndim != 2:
        raise ValueError(f"expected an (m, length) byte array, got shape {strings.shape}")
    length = strings.shape[1]
    if length <= 16:
        return _len_0_to_16(strings, length)
    if length <= 32:
        return _len_17_to_32(strings, length)
    if length <= 64:
        return _len_33_to_64(strings, length)
    return _len_over_64(strings, length)


def fingerprint64_of(value: Union[str, bytes]) -> int:
    """Fingerprint64 of one string (UTF-8 encoded, as TensorFlow hashes a tf.string)."""
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return int(fingerprint64(np.frombuffer(data, dtype=np.uint8).reshape(1, len(data)))[0])


def to_hash_bucket_fast(value: Union[str, bytes], num_buckets: int) -> int:
    """TensorFlow's `tf.strings.to_hash_bucket_fast` for one string."""
    return fingerprint64_of(value) % num_buckets
