"""AlgoPerf's WMT German->English translation workload (Transformer, BLEU) and its variants."""
