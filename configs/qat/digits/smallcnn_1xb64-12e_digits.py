# Float SmallCNN on the embedded digits (16x16 grey, 40% label noise): the start of the demo QAT.
_base_ = ['../_base_/datasets/digits.py', '../_base_/models/smallcnn_digits.py',
          '../_base_/schedules/sgd_cosine_200e.py', '../_base_/default_runtime.py']
model = dict(data_preprocessor={{_base_.data_preprocessor}})
optim_wrapper = dict(optimizer=dict(lr=0.05, nesterov=False))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=12, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=12, val_interval=4)
