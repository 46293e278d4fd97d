_base_ = ['./resnet20_1xb128-200e_cifar100.py']
model = dict(network=dict(depth=18))
