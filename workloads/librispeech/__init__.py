"""LibriSpeech data for the speech workloads (librispeech_conformer, librispeech_deepspeech; reference §4.6, §4.7).

Both workloads read the same prepared data dir, DATA_DIR/librispeech/, in the reference's layout.
Modules, in the order data flows through them:
  prepare        the preparation command: the official OpenSLR archives (or an upstream-prepared dir) -> npy files + csvs
  tokenizer      the SentencePiece vocabulary (1,024 unigram pieces), trained and loaded the reference's way
  input_pipeline padded (audio, paddings) / (targets, paddings) batches, DDP samplers, zero-weight eval padding
  sample_data    small official-layout archives made from real recorded speech (Debian packages), for tests and smoke runs
  metrics        greedy CTC decoding and the word error rate
"""
