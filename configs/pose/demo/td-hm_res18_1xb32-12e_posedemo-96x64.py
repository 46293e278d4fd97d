# SimpleBaseline (ResNet-18, from scratch) on the synthetic pose demo set, on CPU in a few minutes.
#   python tools/make_pose_demo_data.py      (writes data/pose_demo, COCO person keypoints)
#   python tools/train.py configs/pose/demo/td-hm_res18_1xb32-12e_posedemo-96x64.py
# On a 2-core machine that is busy with other work, OMP_NUM_THREADS=1 is several times faster.
# num_workers=0 needs persistent_workers=False too (MMPose's base sets it True).
# Only what differs from MMPose's COCO recipe is set here.
_base_ = ['mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192.py']
custom_imports = dict(imports=['pose_sam.registration'], allow_failed_imports=False)

max_epochs = 12
train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=4)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=50, start_factor=0.01, by_epoch=False),
    dict(type='CosineAnnealingLR', begin=0, end=max_epochs, eta_min=1e-5, by_epoch=True),
]
auto_scale_lr = dict(base_batch_size=32)
randomness = dict(seed=0)
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='ThroughputHook')]  # MMPose's + images/s
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))

codec = dict(type='MSRAHeatmap', input_size=(64, 96), heatmap_size=(16, 24), sigma=1.5, unbiased=True,
             blur_kernel_size=3)
model = dict(
    # ResNet-18's first three stages (stride 16) at 3/4 width, random init: nothing is downloaded.
    backbone=dict(depth=18, num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1), out_indices=(2, ),
                  stem_channels=48, base_channels=48, init_cfg=None),
    head=dict(in_channels=192, deconv_out_channels=(64, 64), deconv_kernel_sizes=(4, 4), decoder=codec),
    # The figures' left side is red, their right side blue: a mirrored image is not a
    # valid sample, so no flip augmentation and no flip test.
    test_cfg=dict(flip_test=False))

data_root = 'data/pose_demo/'
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomBBoxTransform', scale_factor=(0.75, 1.25), rotate_factor=30),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='PackPoseInputs'),
]
train_dataloader = dict(
    batch_size=32, num_workers=2,
    dataset=dict(data_root=data_root, ann_file='annotations/person_keypoints_train.json',
                 data_prefix=dict(img='train/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=2,
    dataset=dict(data_root=data_root, ann_file='annotations/person_keypoints_val.json',
                 bbox_file=None,  # ground-truth boxes
                 data_prefix=dict(img='val/'), pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/person_keypoints_val.json')
test_evaluator = val_evaluator
