_base_ = ['./lsq-w4a4_resnet18_1xb128-90e_cifar10.py']
model = dict(quantization=dict(weight_bits=2, act_bits=2))
optim_wrapper = dict(optimizer=dict(weight_decay=2.5e-5))
