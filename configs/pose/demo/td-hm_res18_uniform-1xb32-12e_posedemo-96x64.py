# The pose demo with UniformSubsetSAM: the control for AUSAM (SAM on a uniformly drawn half of
# each batch, at AUSAM's cost). If AUSAM does not beat it, its ADLP sampling buys nothing.
_base_ = ['./td-hm_res18_1xb32-12e_posedemo-96x64.py']
optim_wrapper = dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
                     sam=dict(type='UniformSubsetSAM', rho=0.05, alpha=0.5))
train_cfg = dict(type='SAMEpochBasedTrainLoop')
