_base_ = ['./cifar10.py']
train_dataloader = dict(dataset=dict(num_classes=100))
val_dataloader = dict(dataset=dict(num_classes=100))
test_dataloader = val_dataloader
data_preprocessor = dict(mean=[0.5071, 0.4865, 0.4409], std=[0.2673, 0.2564, 0.2762])
