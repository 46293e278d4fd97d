# The demo recipe (make demo): W4A4 LSQ QAT with AUSAM (rho 0.1, half of each batch),
# the f_max ramp over 3 of the 10 epochs.
_base_ = ['./lsq-w4a4_smallcnn_1xb64-10e_digits.py']
optim_wrapper = dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
                     sam=dict(type='AUSAM', rho=0.1, alpha=0.5, ramp_epochs=3))
train_cfg = dict(type='SAMEpochBasedTrainLoop')
