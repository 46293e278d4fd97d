# SmallCNN for the embedded digits (1 grey channel, 10 classes); recipes set the preprocessor.
model = dict(
    type='ImageClassifier',
    network=dict(type='SmallCNN', num_classes=10, in_channels=1),
    label_smoothing=0.0,
    data_preprocessor=dict(type='ImgDataPreprocessor'))
