"""ImageNet ResNet-50 workload and its variants."""
