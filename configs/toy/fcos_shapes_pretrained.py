# The tiny FCOS of fcos_shapes.py in the regime of the paper's detectors: its backbone starts
# from weights pretrained on a different task, as the paper's start from ImageNet classification.
# Here: ResNet-18 (16 base channels) trained to classify ten OTHER shapes (pentagon, heart,
# arrow, ...; never the detection classes, never the pool's images) on a set made by the same
# generator; `make pretrained` makes and caches it. Every stage is trained further.
# The schedule: 14 epochs, each at least 858 samples long (RepeatToMinLength), i.e. at least
# 1500 iterations of 8 images. Without that floor a set of a few hundred images is left
# undertrained (measured: 300 images, 14 epochs, bbox mAP 0.094 on val; 40 epochs, 0.133), and
# a set of 858 images or more trains exactly as fcos_shapes.py (the full pool: 3500 iterations).
_base_ = './fcos_shapes.py'

pretrained_backbone = 'data/pretrained/other_shapes_r18c16.pth'
model = dict(backbone=dict(
    init_cfg=dict(_delete_=True, type='Pretrained', checkpoint=pretrained_backbone)))

train_dataloader = dict(
    dataset=dict(_delete_=True, type='RepeatToMinLength', min_length=858,
                 dataset={{_base_.train_dataloader.dataset}}))
