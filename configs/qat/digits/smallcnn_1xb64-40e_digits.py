# Float SmallCNN on the embedded digits (16x16 grey, 40% label noise): the start of the demo QAT.
_base_ = ['../_base_/datasets/digits.py', '../_base_/models/resnet20_cifar.py',
          '../_base_/schedules/sgd_cosine_200e.py', '../_base_/default_runtime.py']
model = dict(network=dict(_delete_=True, type='SmallCNN', num_classes=10, in_channels=1),
             label_smoothing=0.0, data_preprocessor={{_base_.data_preprocessor}})
optim_wrapper = dict(optimizer=dict(lr=0.05, nesterov=False))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=40, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=40, val_interval=10)
