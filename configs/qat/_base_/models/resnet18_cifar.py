_base_ = ['./resnet20_cifar.py']
model = dict(network=dict(depth=18))
