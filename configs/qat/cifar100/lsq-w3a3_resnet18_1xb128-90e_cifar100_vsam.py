_base_ = ['./lsq-w3a3_resnet18_1xb128-90e_cifar100.py']
optim_wrapper = dict(type='SAMOptimWrapper', sam=dict(type='VSAM', rho=0.1, warmup_epochs=3))
