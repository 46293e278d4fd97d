_base_ = ['./lsq-w4a4_smallcnn_1xb64-10e_digits.py']
optim_wrapper = dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
                     sam=dict(type='VSAM', rho=0.05))
train_cfg = dict(type='SAMEpochBasedTrainLoop', warmup_epochs=2)
