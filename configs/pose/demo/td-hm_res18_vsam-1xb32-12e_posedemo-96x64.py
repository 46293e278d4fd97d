# The pose demo with vSAM (warm-up: 1 of the 12 epochs all SAM).
_base_ = ['./td-hm_res18_1xb32-12e_posedemo-96x64.py']
optim_wrapper = dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
                     sam=dict(type='VSAM', rho=0.05))
train_cfg = dict(type='SAMEpochBasedTrainLoop', warmup_epochs=1)
