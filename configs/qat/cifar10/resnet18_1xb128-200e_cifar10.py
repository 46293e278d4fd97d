_base_ = ['./resnet20_1xb128-200e_cifar10.py']
model = dict(network=dict(depth=18))
