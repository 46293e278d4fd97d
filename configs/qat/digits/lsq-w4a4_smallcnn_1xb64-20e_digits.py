# LSQ W4A4 QAT of the float SmallCNN (first/last layer 8 bits), SGD, 20 epochs.
# Needs the float checkpoint: python tools/train.py configs/qat/digits/smallcnn_1xb64-40e_digits.py
_base_ = ['../_base_/datasets/digits.py', '../_base_/models/resnet20_cifar.py',
          '../_base_/schedules/qat_sgd_cosine_90e.py', '../_base_/default_runtime.py']
model = dict(network=dict(_delete_=True, type='SmallCNN', num_classes=10, in_channels=1),
             label_smoothing=0.0, data_preprocessor={{_base_.data_preprocessor}},
             float_checkpoint='work_dirs/smallcnn_1xb64-40e_digits/epoch_40.pth',
             quantization=dict(weight_bits=4, act_bits=4, first_last_bits=8))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=20, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=20, val_interval=5)
