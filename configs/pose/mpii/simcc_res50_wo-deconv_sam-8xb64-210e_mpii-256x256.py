# SimCC ResNet-50 without deconvolution, MPII 256x256 (the AUSAM paper's pose setting), trained with
# SAM: two forward/backward passes per step (about twice the cost of Adam).
# MMPose's own config; only the optimizer wrapper differs (its Adam, lr and schedule are kept).
_base_ = ['mmpose::body_2d_keypoint/simcc/mpii/simcc_res50_wo-deconv-8xb64-210e_mpii-256x256.py']
custom_imports = dict(imports=['pose_sam.registration'], allow_failed_imports=False)
optim_wrapper = dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
                     sam=dict(type='SAM', rho=0.05))
# MMEngine refuses type next to by_epoch: MMPose's train_cfg is replaced, its values kept.
train_cfg = dict(_delete_=True, type='SAMEpochBasedTrainLoop', max_epochs=210, val_interval=10)
