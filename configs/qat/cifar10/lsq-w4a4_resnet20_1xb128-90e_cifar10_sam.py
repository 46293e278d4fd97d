_base_ = ['./lsq-w4a4_resnet20_1xb128-90e_cifar10.py']
optim_wrapper = dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
                     sam=dict(type='SAM', rho=0.05))
train_cfg = dict(type='SAMEpochBasedTrainLoop')
