_base_ = ['./lsq-w4a4_resnet20_1xb128-90e_cifar100.py']
model = dict(network=dict(depth=18), float_checkpoint='work_dirs/resnet18_1xb128-200e_cifar100/epoch_200.pth')
