_base_ = ['./lsq-w4a4_resnet18_1xb128-90e_cifar10.py']
optim_wrapper = dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
                     sam=dict(type='AUSAM', rho=0.05, alpha=0.5, ramp_epochs=14))
train_cfg = dict(type='SAMEpochBasedTrainLoop')
