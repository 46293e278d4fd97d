_base_ = ['./lsq-w2a2_resnet20_1xb128-90e_cifar10.py']
optim_wrapper = dict(type='SAMOptimWrapper', sam=dict(type='VSAM', rho=0.05, warmup_epochs=3))
