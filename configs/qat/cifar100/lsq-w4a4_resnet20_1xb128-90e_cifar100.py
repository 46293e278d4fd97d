# LSQ W4A4 QAT (first/last layer 8 bits) of the float ResNet-20, SGD, 90 epochs.
# Needs the float checkpoint: python tools/train.py configs/qat/cifar100/resnet20_1xb128-200e_cifar100.py
_base_ = ['../_base_/datasets/cifar100.py', '../_base_/models/resnet20_cifar.py',
          '../_base_/schedules/qat_sgd_cosine_90e.py', '../_base_/default_runtime.py']
model = dict(network=dict(num_classes=100), data_preprocessor={{_base_.data_preprocessor}},
             float_checkpoint='work_dirs/resnet20_1xb128-200e_cifar100/epoch_200.pth',
             quantization=dict(weight_bits=4, act_bits=4, first_last_bits=8))
