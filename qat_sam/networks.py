"""The classification networks (plain ``nn.Module``s, no MMEngine: usable from any loop).

CIFAR ResNets (He et al. 2016): ResNet-20 (3 stages of 3 basic blocks, 16/32/64 channels)
and the CIFAR variant of ResNet-18 (3x3 stem, no max-pool, 64..512 channels); torchvision's
ImageNet ResNets; the small digits CNN. :mod:`qat_sam.models` registers them in MMEngine's
``MODELS`` registry for configs.
"""
from typing import List

from torch import nn

from common.options import checked_options


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU(inplace=False)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


@checked_options
class CifarResNet(nn.Module):
    """ResNet for 32x32 inputs (any size works: global average pooling).

    Args:
        depth: 20 (16/32/64 channels, 3 blocks per stage), 8 (the same with 1 block per stage:
            the n = 1 member of He et al.'s 6n+2 family, for CPU-scale runs) or 18 (64..512,
            2 blocks, 4 stages).
        num_classes: Output classes.
        in_channels: Input channels (1 for the grey digits).
    """

    SPECS = {8: ([16, 32, 64], [1, 1, 1]), 20: ([16, 32, 64], [3, 3, 3]), 18: ([64, 128, 256, 512], [2, 2, 2, 2])}

    def __init__(self, depth: int = 20, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if depth not in self.SPECS:
            raise ValueError(f'depth must be one of {sorted(self.SPECS)}, got {depth}.')
        widths, blocks = self.SPECS[depth]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=False))
        layers: List[nn.Module] = []
        cin = widths[0]
        for i, (width, count) in enumerate(zip(widths, blocks)):
            for j in range(count):
                layers.append(BasicBlock(cin, width, 2 if (j == 0 and i > 0) else 1))
                cin = width
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))


@checked_options
class TorchvisionResNet(nn.Module):
    """torchvision's ImageNet ResNets (18/34/50), randomly initialised or from a checkpoint."""

    def __init__(self, depth: int = 18, num_classes: int = 1000):
        super().__init__()
        import torchvision
        self.net = getattr(torchvision.models, f'resnet{depth}')(num_classes=num_classes)

    def forward(self, x):
        return self.net(x)


@checked_options
class SmallCNN(nn.Module):
    """Three conv-BN-ReLU blocks and a linear head (~0.1 M parameters): the digits demo network."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))
