# CPU-scale float recipe (about 2.5 min per SGD run on one core): the ResNet-20 recipe with
# ResNet-8 (one block per stage), a class-balanced 5,000-image subset of the training split, batch
# 32 with the learning rate scaled by sqrt(32/128) (1,875 iterations: room for vSAM's windows), 12
# epochs, and no loader workers (the images are decoded in memory; on 2 cores workers would take the
# cores from training). The test split is the full 10,000 images.
_base_ = ['./resnet20_1xb128-200e_cifar10.py']
model = dict(network=dict(depth=8))
train_dataloader = dict(batch_size=32, num_workers=0, persistent_workers=False, dataset=dict(subset_size=5000))
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=12, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=12, val_interval=4)
