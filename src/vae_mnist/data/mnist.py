"""What an MNIST example is: a 28x28 grey image and a digit label.

The facts the model, the metrics, the figures and the params' limits (config.py) share, in a
module of their own so that none of them reruns when the file table or the IDX reader changes.
"""

IMAGE_SHAPE = (28, 28)
PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
NUM_CLASSES = 10
TRAIN_IMAGES = 60_000  # MNIST's training set, which data.val_size is held out of
