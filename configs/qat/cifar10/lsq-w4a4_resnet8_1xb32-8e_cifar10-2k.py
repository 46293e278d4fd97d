# CPU-scale LSQ W4A4 QAT: the ResNet-20 W4A4 recipe at the scale of resnet8_1xb32-25e_cifar10-2k.py
# (ResNet-8, 2,000 images without crop or flip, batch 32 with the learning rate scaled by
# sqrt(32/128)), from that recipe's float checkpoint, for 8 epochs.
_base_ = ['./lsq-w4a4_resnet20_1xb128-90e_cifar10.py']
model = dict(network=dict(depth=8), float_checkpoint='work_dirs/resnet8_1xb32-25e_cifar10-2k/epoch_25.pth')
train_dataloader = dict(batch_size=32, num_workers=0, persistent_workers=False,
                        dataset=dict(subset_size=2000, augment=False))
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=0.005))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=8, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=8, val_interval=4)
