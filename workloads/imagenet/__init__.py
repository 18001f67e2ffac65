"""ImageNet (ILSVRC 2012) data for the image-classification workloads: preparation, transforms, input pipeline.

The data layer is shared: the ResNet-50 workload and a later ViT workload read the same
prepared data dir (DATA_DIR/imagenet/{train,val,imagenet_v2}) through the same pipeline,
differing only in the train transform they pass.
"""
