"""ImageNet ViT-S/16 workload and its variants."""
