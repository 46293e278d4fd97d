# scikit-learn's handwritten digits (shipped in the package): 1300 train / 497 test,
# 16x16 grey, 40% symmetric label noise on the training labels.
train_dataloader = dict(
    batch_size=64, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True), collate_fn=dict(type='default_collate'),
    dataset=dict(type='DigitsDataset', split='train', image_size=16, noise_rate=0.4))
val_dataloader = dict(
    batch_size=256, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='default_collate'),
    dataset=dict(type='DigitsDataset', split='test', image_size=16))
test_dataloader = val_dataloader
val_evaluator = dict(type='TopKAccuracy', topk=(1, 5))
test_evaluator = val_evaluator
val_cfg = dict()
test_cfg = dict()
data_preprocessor = dict(type='ImgDataPreprocessor', mean=[0.3], std=[0.35])
