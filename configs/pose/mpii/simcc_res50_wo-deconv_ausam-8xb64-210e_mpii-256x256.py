# SimCC ResNet-50 without deconvolution, MPII 256x256 (the AUSAM paper's pose setting), trained with
# AUSAM: SAM on the half of each batch drawn by average loss change (per-sample losses and
# annotation-id sample ids come from pose_sam's adapter; nothing else changes).
# MMPose's own config; only the optimizer wrapper differs (its Adam, lr and schedule are kept).
_base_ = ['mmpose::body_2d_keypoint/simcc/mpii/simcc_res50_wo-deconv-8xb64-210e_mpii-256x256.py']
optim_wrapper = dict(type='SAMOptimWrapper', sam=dict(type='AUSAM', rho=0.05, alpha=0.5, ramp_epochs=30))
