"""AlgoPerf's fastMRI workload: a U-Net reconstructing 4x under-sampled single-coil knee MRI slices (reference §4.3).

Modules, in the order data flows through them:
  prepare        the preparation command: official knee_singlecoil HDF5 volumes -> prepared slices under <data-dir>/fastmri/
  input_pipeline k-space masking, zero-filled reconstruction, normalisation; shuffled train and padded eval batches
  sample_data    small volumes in the official HDF5 layout, for tests and smoke runs
  model          the U-Net
  ssim           structural similarity, the target metric
  workload       the workload and its variants (model_size, tanh, layernorm)
"""
