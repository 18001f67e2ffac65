"""Small LibriSpeech archives in the official layout, made from real recorded speech, for tests, smoke runs and the benchmark.

No LibriSpeech audio installs offline, but two Debian packages ship transcribed speech:
  asterisk-core-sounds-en-wav + asterisk-core-sounds-en   /usr/share/asterisk/sounds/en_US_f_Allison/**.wav,
      568 telephone prompts by one professional speaker, 8 kHz 16-bit mono, with their text in
      /usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz as `name: text` lines (563 are
      speech; tones and silences are left out);
  pocketsphinx-testdata   /usr/share/pocketsphinx/test/data/librivox/*.wav: five LibriVox clips of
      Sense and Sensibility (LibriSpeech's own source), 16 kHz, and cards/*.wav, five short
      read card names, with `<s> text </s> (id)` transcripts.
The asterisk prompts are resampled to 16 kHz (torchaudio's band-limited sinc resampler);
every transcript is written as LibriSpeech writes them: upper case, words of letters and
apostrophes only (numbers up to 99 spelled out, `&`, `#`, `*` read as AND, POUND, STAR,
bracketed notes dropped). The five LibriVox clips go to dev-clean and test-clean and two of
the card clips to dev-other, so validation and test hold in-domain speech; every other
utterance is an asterisk prompt, no prompt used twice (unless --seconds asks for more audio
than the 25 minutes there are). train-clean-100 first takes prompts that between them hold
every letter and the apostrophe, so that its tokenizer knows every character of the other
subsets.

The six archives follow the release: <subset>.tar.gz holding LibriSpeech/<subset>/<speaker>/
<chapter>/<speaker>-<chapter>-<nnnn>.flac and <speaker>-<chapter>.trans.txt, plus a
LibriSpeech/README.TXT (or left unpacked under LibriSpeech/ with --unpacked). Speaker and
chapter numbers are made up: one speaker and chapter per archive (utterances added through
`extra` get a second one).
--seconds joins consecutive prompts (a quarter second of silence between them) into
utterances of at least that length, for realistic LibriSpeech lengths (12.3 s on average).

Usage: python -m workloads.librispeech.sample_data --raw-dir RAW [--train-clean-100 12] [--dev-clean 4] ... [--seed 0]
           [--seconds S] [--unpacked]
       python -m workloads.librispeech.prepare --data-dir DIR --raw-dir RAW --subset --workers 1
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gzip
import io
import re
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from workloads.librispeech.input_pipeline import DATASET_NAME, MAX_AUDIO_SAMPLES, MAX_TRANSCRIPT_CHARS, SAMPLE_RATE, SUBSETS

ASTERISK_DIR = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
POCKETSPHINX_DIR = Path("/usr/share/pocketsphinx/test/data")
LIBRIVOX_DIR = POCKETSPHINX_DIR / "librivox"
CARDS_DIR = POCKETSPHINX_DIR / "cards"
INSTALL_HINT = "sudo apt-get install pocketsphinx-testdata asterisk-core-sounds-en-wav asterisk-core-sounds-en"
DEFAULT_COUNTS = {"train-clean-100": 12, "train-clean-360": 4, "train-other-500": 4, "dev-clean": 4, "dev-other": 4, "test-clean": 4}
# In-domain clips and where they go: the LibriVox reading to the clean eval sets, two card names to dev-other.
LIBRIVOX_PLACES = {"dev-clean": ("librivox", (0, 1)), "test-clean": ("librivox", (2, 3, 4)), "dev-other": ("cards", (0, 4))}
GAP_SECONDS = 0.25  # silence between prompts joined into one utterance
ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")


class MissingSpeechError(RuntimeError):
    """The Debian speech packages are not installed."""


@dataclasses.dataclass(frozen=True)
class Prompt:
    """One recording and its LibriSpeech-style transcript; the audio is read when needed."""

    name: str  # e.g. asterisk:digits/5, librivox:sense_and_sensibility_01_austen_64kb-0870
    text: str
    path: Path
    frames: int  # at the file's own rate
    rate: int

    @property
    def samples(self) -> int:
        """Length at 16 kHz."""
        return self.frames * SAMPLE_RATE // self.rate


@dataclasses.dataclass(frozen=True)
class Utterance:
    text: str
    audio: np.ndarray  # int16, 16 kHz


def speech_available() -> bool:
    try:
        import soundfile  # noqa: F401
    except ModuleNotFoundError:
        return False
    return ASTERISK_TRANSCRIPTS.is_file() and ASTERISK_DIR.is_dir() and LIBRIVOX_DIR.is_dir() and CARDS_DIR.is_dir()


def _require_speech() -> None:
    if not speech_available():
        raise MissingSpeechError(
            f"the sample LibriSpeech data is made from the speech in {ASTERISK_DIR} and {LIBRIVOX_DIR}; "
            f"install it with: {INSTALL_HINT} (and pip install soundfile)"
        )


# --- transcripts -------------------------------------------------------------------------------------

_ONES = ("ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN ELEVEN TWELVE THIRTEEN FOURTEEN FIFTEEN SIXTEEN SEVENTEEN "
         "EIGHTEEN NINETEEN").split()
_TENS = "TWENTY THIRTY FORTY FIFTY SIXTY SEVENTY EIGHTY NINETY".split()
_SYMBOLS = {"&": " AND ", "#": " POUND ", "*": " STAR "}


def _number_words(number: int) -> Optional[str]:
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens - 2] + ("" if ones == 0 else " " + _ONES[ones])
    return None


def normalise_transcript(text: str) -> Optional[str]:
    """LibriSpeech's form of a transcript (upper-case words of letters and apostrophes), or None when
    it has no words or a number this spelling does not cover."""
    text = re.sub(r"\[[^\]]*\]", " ", text)  # [ascending tones], [@]: notes, not speech
    for symbol, word in _SYMBOLS.items():
        text = text.replace(symbol, word)
    numbers = [int(match) for match in re.findall(r"\d+", text)]
    if any(_number_words(number) is None for number in numbers):
        return None
    text = re.sub(r"\d+", lambda match: f" {_number_words(int(match.group()))} ", text)
    words = [word.strip("'") for word in re.sub(r"[^A-Z']+", " ", text.upper()).split()]
    return " ".join(word for word in words if word) or None


# --- the recordings ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def asterisk_prompts() -> Tuple[Prompt, ...]:
    """Every spoken asterisk prompt with a usable transcript, in name order."""
    import soundfile

    _require_speech()
    texts = {}
    with gzip.open(ASTERISK_TRANSCRIPTS, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith(";") or ":" not in line:
                continue
            name, text = line.split(":", 1)
            texts[name.strip()] = text.strip()
    prompts = []
    for path in sorted(ASTERISK_DIR.rglob("*.wav")):
        name = path.relative_to(ASTERISK_DIR).with_suffix("").as_posix()
        text = normalise_transcript(texts.get(name, ""))
        if text is None or name.startswith("silence/"):
            continue
        info = soundfile.info(str(path))
        prompts.append(Prompt(f"asterisk:{name}", text, path, info.frames, info.samplerate))
    return tuple(prompts)


def _pocketsphinx_prompts(folder: Path, transcription: Path, source: str) -> Tuple[Prompt, ...]:
    import soundfile

    _require_speech()
    prompts = []
    for line in transcription.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"\s*<s>(.*)</s>\s*\((\S+)\)\s*", line)
        if not match:
            continue
        path = folder / f"{match.group(2)}.wav"
        info = soundfile.info(str(path))
        prompts.append(Prompt(f"{source}:{match.group(2)}", normalise_transcript(match.group(1)), path, info.frames, info.samplerate))
    return tuple(prompts)


def librivox_prompts() -> Tuple[Prompt, ...]:
    """The five LibriVox clips of pocketsphinx-testdata (16 kHz), in their transcription's order."""
    return _pocketsphinx_prompts(LIBRIVOX_DIR, LIBRIVOX_DIR / "transcription", "librivox")


def card_prompts() -> Tuple[Prompt, ...]:
    return _pocketsphinx_prompts(CARDS_DIR, CARDS_DIR / "cards.transcription", "cards")


@functools.lru_cache(maxsize=64)
def _audio(path: Path, rate: int) -> np.ndarray:
    import soundfile

    samples, file_rate = soundfile.read(str(path), dtype="int16")
    if file_rate == SAMPLE_RATE:
        return samples
    import torch
    import torchaudio.functional

    waveform = torch.from_numpy(samples.astype(np.float32))
    resampled = torchaudio.functional.resample(waveform, file_rate, SAMPLE_RATE)
    return resampled.round().clamp(-32768, 32767).to(torch.int16).numpy()


def prompt_audio(prompt: Prompt) -> np.ndarray:
    """The prompt's samples at 16 kHz, int16."""
    return _audio(prompt.path, prompt.rate)


def join(prompts: Sequence[Prompt]) -> Utterance:
    """One utterance of the prompts in turn, a short silence between them."""
    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), np.int16)
    pieces = []
    for number, prompt in enumerate(prompts):
        pieces += [gap, prompt_audio(prompt)] if number else [prompt_audio(prompt)]
    return Utterance(" ".join(prompt.text for prompt in prompts), np.concatenate(pieces))


# --- choosing the prompts -----------------------------------------------------------------------------


def _covering(pool: Sequence[Prompt], limit: int) -> List[Prompt]:
    """Up to `limit` prompts that between them use every letter and the apostrophe (greedy: most new
    characters first, then the shorter recording, then the name)."""
    chosen: List[Prompt] = []
    missing = set(ALPHABET)
    while missing and len(chosen) < limit:
        best = min(pool, key=lambda p: (-len(missing & set(p.text)), p.samples, p.name))
        if not missing & set(best.text):
            break
        chosen.append(best)
        missing -= set(best.text)
    return chosen


def choose_prompts(counts: Dict[str, int], seed: int = 0, seconds: Optional[float] = None) -> Dict[str, List[List[Prompt]]]:
    """Per subset, its utterances as lists of prompts (one prompt each unless `seconds` is given)."""
    unknown = sorted(set(counts) - set(SUBSETS))
    if unknown:
        raise ValueError(f"unknown LibriSpeech subsets {unknown}; expected some of {', '.join(SUBSETS)}")
    # Prompts the preparation would drop anyway stay out (tests add such utterances on purpose).
    pool = [p for p in asterisk_prompts() if p.samples <= MAX_AUDIO_SAMPLES and len(p.text) <= MAX_TRANSCRIPT_CHARS]
    rng = np.random.default_rng(seed)
    cover = _covering(pool, counts.get("train-clean-100", 0))
    rest = [pool[i] for i in rng.permutation(len(pool)) if pool[i] not in cover]
    stream = iter(cover + rest)
    in_domain = {"librivox": librivox_prompts(), "cards": card_prompts()}

    def take() -> Prompt:
        nonlocal stream, rest
        try:
            return next(stream)
        except StopIteration:  # more audio asked for than the prompts hold: go round again
            stream = iter(rest)
            return next(stream)

    chosen: Dict[str, List[List[Prompt]]] = {}
    for subset in SUBSETS:
        count = counts.get(subset, 0)
        source, picks = LIBRIVOX_PLACES.get(subset, ("", ()))
        utterances = [[in_domain[source][i]] for i in picks[:count]]
        while len(utterances) < count:
            utterances.append([take()])
        if seconds:
            for group in utterances:
                while sum(p.samples for p in group) + GAP_SECONDS * SAMPLE_RATE * (len(group) - 1) < seconds * SAMPLE_RATE:
                    group.append(take())
        chosen[subset] = utterances
    return chosen


# --- writing the archives ------------------------------------------------------------------------------


def utterance_ids(subset: str, count: int, source: int = 0) -> List[str]:
    """Made-up LibriSpeech ids: one speaker and chapter per subset and source."""
    speaker = 100 * (SUBSETS.index(subset) + 1) + source + 1
    chapter = 1000 * (SUBSETS.index(subset) + 1) + 10 * (source + 1)
    return [f"{speaker}-{chapter}-{n:04d}" for n in range(count)]


def _flac(audio: np.ndarray) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def _members(subset: str, utterances: Dict[str, Utterance]) -> Iterable[Tuple[str, bytes]]:
    """(path inside the archive, bytes): per chapter its FLACs, then its transcript file, as the release."""
    yield "LibriSpeech/README.TXT", b"Sample LibriSpeech-layout archive made by workloads/librispeech/sample_data.py.\n"
    chapters: Dict[Tuple[str, str], List[str]] = {}
    for utterance in utterances:
        speaker, chapter, _ = utterance.split("-")
        chapters.setdefault((speaker, chapter), []).append(utterance)
    for (speaker, chapter), ids in sorted(chapters.items()):
        folder = f"LibriSpeech/{subset}/{speaker}/{chapter}"
        lines = []
        for utterance in sorted(ids):
            yield f"{folder}/{utterance}.flac", _flac(utterances[utterance].audio)
            lines.append(f"{utterance} {utterances[utterance].text}\n")
        yield f"{folder}/{speaker}-{chapter}.trans.txt", "".join(lines).encode("utf-8")


def write_subset(raw_dir: Path, subset: str, utterances: Dict[str, Utterance], unpacked: bool = False) -> Path:
    """<subset>.tar.gz (or LibriSpeech/<subset>/ when unpacked) in raw_dir holding `utterances` by id."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    if unpacked:
        shutil.rmtree(raw_dir / "LibriSpeech" / subset, ignore_errors=True)
        for name, data in _members(subset, utterances):
            (raw_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (raw_dir / name).write_bytes(data)
        return raw_dir / "LibriSpeech" / subset
    archive = raw_dir / f"{subset}.tar.gz"
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:gz", compresslevel=1) as tar:  # FLAC does not shrink further
        for name, data in _members(subset, utterances):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    partial.replace(archive)
    return archive


def write_raw_dir(
    raw_dir: Path,
    counts: Optional[Dict[str, int]] = None,
    seed: int = 0,
    seconds: Optional[float] = None,
    unpacked: bool = False,
    extra: Optional[Dict[str, Sequence[Utterance]]] = None,
) -> Dict[str, Dict[str, str]]:
    """All six archives in raw_dir; returns each subset's {utterance id: transcript}.

    counts: utterances per subset (default DEFAULT_COUNTS); extra: more utterances for some
    subsets, given their own speaker (e.g. ones the preparation must drop).
    """
    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    chosen = choose_prompts(counts, seed, seconds)
    written: Dict[str, Dict[str, str]] = {}
    for subset in SUBSETS:
        utterances = dict(zip(utterance_ids(subset, len(chosen[subset])), (join(group) for group in chosen[subset])))
        added = list((extra or {}).get(subset, ()))
        utterances.update(zip(utterance_ids(subset, len(added), source=8), added))
        write_subset(raw_dir, subset, utterances, unpacked)
        written[subset] = {utterance: u.text for utterance, u in utterances.items()}
    return written


def write_prepared_data_dir(
    data_dir: Path, counts: Optional[Dict[str, int]] = None, vocab_size: int = 1024, seconds: Optional[float] = None
) -> Path:
    """A tiny prepared DATA_DIR/librispeech made by the real preparation command (for smoke runs): the
    sample archives are written to DATA_DIR/librispeech_smoke_raw and prepared as a --subset.
    `seconds` joins prompts into utterances of at least that length (see write_raw_dir)."""
    from workloads.librispeech import prepare

    raw = Path(data_dir) / f"{DATASET_NAME}_smoke_raw"
    write_raw_dir(raw, counts, seconds=seconds)
    arguments = ["--data-dir", str(data_dir), "--raw-dir", str(raw), "--subset", "--workers", "1", "--vocab-size", str(vocab_size)]
    if prepare.main(arguments) != 0:
        raise RuntimeError(f"preparing the librispeech smoke data from {raw} failed (see the message above)")
    return Path(data_dir) / DATASET_NAME


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workloads.librispeech.sample_data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--raw-dir", required=True, help="where the six archives (or the unpacked LibriSpeech/ folder) go")
    for subset in SUBSETS:
        parser.add_argument(f"--{subset}", type=int, default=DEFAULT_COUNTS[subset], dest=subset.replace("-", "_"),
                            help=f"utterances in {subset} (default {DEFAULT_COUNTS[subset]})")
    parser.add_argument("--seed", type=int, default=0, help="which asterisk prompts go where (default 0)")
    parser.add_argument("--seconds", type=float, help="join prompts into utterances of at least this many seconds")
    parser.add_argument("--unpacked", action="store_true", help="write LibriSpeech/<subset>/ folders instead of archives")
    args = parser.parse_args(argv)
    counts = {subset: getattr(args, subset.replace("-", "_")) for subset in SUBSETS}
    try:
        written = write_raw_dir(Path(args.raw_dir).expanduser(), counts, args.seed, args.seconds, args.unpacked)
    except (MissingSpeechError, ValueError) as error:
        print(f"LibriSpeech sample data: {error}", file=sys.stderr)
        return 1
    total = sum(len(ids) for ids in written.values())
    print(f"LibriSpeech sample archives ({total} utterances) written to {args.raw_dir}; prepare them with "
          f"python -m workloads.librispeech.prepare --data-dir DATA --raw-dir {args.raw_dir} --subset")
    return 0


if __name__ == "__main__":
    sys.exit(main())
