"""LibriSpeech DeepSpeech workload and its variants."""
