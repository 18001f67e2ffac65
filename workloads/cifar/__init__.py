"""CIFAR-10 ResNet-18 development workload."""
