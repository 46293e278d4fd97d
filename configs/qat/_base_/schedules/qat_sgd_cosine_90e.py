# LSQ QAT from a float checkpoint: SGD momentum 0.9, cosine LR, small weight decay.
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-5))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=90, convert_to_iter_based=True)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=90, val_interval=5)
