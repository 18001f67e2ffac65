"""LibriSpeech Conformer workload and its variants (reference §4.6, §5)."""
