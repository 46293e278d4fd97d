# CPU-scale float recipe (about 90 s per SGD run on one core of the 2-core machine): the ResNet-20
# recipe with ResNet-8 (one block per stage), a class-balanced 2,000-image subset of the training
# split without crop or flip (so that SGD overfits it within the budget: the regime where SAM's gain
# shows), batch 32 with the learning rate scaled by sqrt(32/128), 25 epochs (1,575 iterations: room
# for vSAM's windows), and no loader workers (the images are decoded in memory; on 2 cores workers
# would take the cores from training). The test split is all 10,000 images.
_base_ = ['./resnet20_1xb128-200e_cifar10.py']
model = dict(network=dict(depth=8))
train_dataloader = dict(batch_size=32, num_workers=0, persistent_workers=False,
                        dataset=dict(subset_size=2000, augment=False))
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, T_max=25, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=25, val_interval=5)
