"""The task: FER data sets, the VGG16-FER model, training and evaluation."""
