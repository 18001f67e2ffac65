"""AlgoPerf's OGBG workload: a graph network predicting 128 bioassay outcomes of ogbg-molpcba molecules (reference §4.8).

Modules, in the order data flows through them:
  raw_format     the official OGB raw release (gzipped CSVs + scaffold split), read and checked
  prepare        the preparation command: raw release -> compact arrays under <data-dir>/ogbg/
  prepared_data  the on-disk array format and its loader
  batching       dynamic batching under node/edge/graph budgets, with padding graphs
  input_pipeline shuffled, repeated train stream and finite eval passes, as torch batches
  graphs         the GraphsTuple batch container
  model          the GNN (GraphNetwork message passing)
  metrics        masked sigmoid cross-entropy, accuracy and mean average precision
  workload       the workload and its variants (gelu, silu, model_size)
"""
