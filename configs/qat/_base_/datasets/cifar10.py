# CIFAR-10 from data/cifar: tools/prepare_cifar.py's arrays, torchvision's python format or the
# image-folder form (train/<class>/*.jpg), decoded once into memory; nothing is downloaded.
train_dataloader = dict(
    batch_size=128, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True), collate_fn=dict(type='default_collate'),
    dataset=dict(type='CIFARDataset', data_root='data/cifar', num_classes=10, split='train'))
val_dataloader = dict(
    batch_size=256, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='default_collate'),
    dataset=dict(type='CIFARDataset', data_root='data/cifar', num_classes=10, split='test'))
test_dataloader = val_dataloader
val_evaluator = dict(type='TopKAccuracy', topk=(1, 5))
test_evaluator = val_evaluator
val_cfg = dict()
test_cfg = dict()
data_preprocessor = dict(type='ImgDataPreprocessor', mean=[0.4914, 0.4822, 0.4465],
                         std=[0.2470, 0.2435, 0.2616])
