"""finewebedu_lm: the decoder-only Transformer LM on FineWeb-Edu (LM_AND_A100 §4.12)."""
