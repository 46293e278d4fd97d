# Float CIFAR ResNet-20 on CIFAR-10 (data/cifar): the start of its LSQ QAT recipes.
_base_ = ['../_base_/datasets/cifar10.py', '../_base_/models/resnet20_cifar.py',
          '../_base_/schedules/sgd_cosine_200e.py', '../_base_/default_runtime.py']
model = dict(network=dict(num_classes=10), data_preprocessor={{_base_.data_preprocessor}})
