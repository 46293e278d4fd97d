# The pose demo (make demo) with SAM: two forward/backward passes per step.
_base_ = ['./td-hm_res18_1xb32-12e_posedemo-96x64.py']
optim_wrapper = dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
                     sam=dict(type='SAM', rho=0.05))
train_cfg = dict(type='SAMEpochBasedTrainLoop')
