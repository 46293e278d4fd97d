_base_ = ['./lsq-w4a4_resnet20_1xb128-90e_cifar10.py']
model = dict(quantization=dict(weight_bits=3, act_bits=3))
