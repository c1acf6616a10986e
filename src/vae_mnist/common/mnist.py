"""What an MNIST example is: a 28x28 grey image and a digit label; and how many training images
there are. Every layer agrees on these: the params' limits, the model's shapes, the metrics, the
figures and the data stages."""

IMAGE_SHAPE = (28, 28)
PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
NUM_CLASSES = 10
TRAIN_IMAGES = 60_000  # MNIST's training set, which data.val_size is held out of
