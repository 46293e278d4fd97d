# SimpleBaseline ResNet-50, COCO 256x192 (MMPose model zoo AP 0.718 with Adam), trained with
# AUSAM: SAM on the half of each batch drawn by average loss change (per-sample losses and
# annotation-id sample ids come from pose_sam's adapter; nothing else changes).
# MMPose's own config; only the optimizer wrapper differs (its Adam, lr and schedule are kept).
_base_ = ['mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192.py']
custom_imports = dict(imports=['pose_sam.registration'], allow_failed_imports=False)
optim_wrapper = dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
                     sam=dict(type='AUSAM', rho=0.05, alpha=0.5, ramp_epochs=30))
# MMEngine refuses type next to by_epoch: MMPose's train_cfg is replaced, its values kept.
train_cfg = dict(_delete_=True, type='SAMEpochBasedTrainLoop', max_epochs=210, val_interval=10)
