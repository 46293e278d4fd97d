_base_ = ['./lsq-w2a2_resnet20_1xb128-90e_cifar100.py']
optim_wrapper = dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
                     sam=dict(type='VSAM', rho=0.1))
train_cfg = dict(type='SAMEpochBasedTrainLoop', warmup_epochs=3)
