# LSQ W4A4 QAT of the float SmallCNN (first/last layer 8 bits), SGD, 10 epochs.
# Needs the float checkpoint: python tools/train.py configs/qat/digits/smallcnn_1xb64-12e_digits.py
_base_ = ['../_base_/datasets/digits.py', '../_base_/models/smallcnn_digits.py',
          '../_base_/schedules/qat_sgd_cosine_90e.py', '../_base_/default_runtime.py']
model = dict(data_preprocessor={{_base_.data_preprocessor}},
             float_checkpoint='work_dirs/smallcnn_1xb64-12e_digits/epoch_12.pth',
             quantization=dict(weight_bits=4, act_bits=4, first_last_bits=8))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=10, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=10, val_interval=5)
