# SimpleBaseline ResNet-50, COCO 256x192 (MMPose model zoo AP 0.718 with Adam), trained with
# SAM: two forward/backward passes per step (about twice the cost of Adam).
# MMPose's own config; only the optimizer wrapper differs (its Adam, lr and schedule are kept).
_base_ = ['mmpose::body_2d_keypoint/topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192.py']
optim_wrapper = dict(type='SAMOptimWrapper', sam=dict(type='SAM', rho=0.05))
