# The pose demo (make demo) with AUSAM: SAM on half of each batch, drawn by average loss change;
# the f_max ramp over 2 of the 12 epochs.
_base_ = ['./td-hm_res18_1xb32-12e_posedemo-96x64.py']
optim_wrapper = dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
                     sam=dict(type='AUSAM', rho=0.05, alpha=0.5, ramp_epochs=2))
train_cfg = dict(type='SAMEpochBasedTrainLoop')
