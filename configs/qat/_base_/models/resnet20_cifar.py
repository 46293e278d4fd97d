model = dict(
    type='ImageClassifier',
    network=dict(type='CifarResNet', depth=20, num_classes=10, in_channels=3),
    label_smoothing=0.1,
    data_preprocessor=dict(type='ImgDataPreprocessor'))  # the recipe sets mean/std from its data base
