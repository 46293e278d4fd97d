# SimpleBaseline ResNet-50, COCO 256x192 (MMPose model zoo AP 0.718 with Adam), trained with
# SAM: two forward/backward passes per step (about twice the cost of Adam).
# MMPose's own config; only the optimizer wrapper differs (its Adam, lr and schedule are kept).
_base_ = ['mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192.py']
custom_imports = dict(imports=['pose_sam.registration'], allow_failed_imports=False)
optim_wrapper = dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
                     sam=dict(type='SAM', rho=0.05))
# MMEngine refuses type next to by_epoch: MMPose's train_cfg is replaced, its values kept.
train_cfg = dict(_delete_=True, type='SAMEpochBasedTrainLoop', max_epochs=210, val_interval=10)
