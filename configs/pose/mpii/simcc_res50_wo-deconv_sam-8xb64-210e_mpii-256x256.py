# SimCC ResNet-50 without deconvolution, MPII 256x256 (the AUSAM paper's pose setting), trained with
# SAM: two forward/backward passes per step (about twice the cost of Adam).
# MMPose's own config; only the optimizer wrapper differs (its Adam, lr and schedule are kept).
_base_ = ['mmpose::body_2d_keypoint/simcc/mpii/simcc_res50_wo-deconv-8xb64-210e_mpii-256x256.py']
optim_wrapper = dict(type='SAMOptimWrapper', sam=dict(type='SAM', rho=0.05))
