_base_ = ['./lsq-w4a4_resnet20_1xb128-90e_cifar10.py']
optim_wrapper = dict(type='SAMOptimWrapper', sam=dict(type='SAM', rho=0.05))
