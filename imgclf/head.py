"""Training the new head on cached backbone features (the transfer stage)."""
from imgclf import model as model_lib
from imgclf.dataset import batches, training_batches
from imgclf.training import (class_weights, compile_model, fit, one_hot, positive_weights,
                             steps_per_epoch)


def train_head(train, val, class_names, params, live, strategy, jit_compile=False, backup=None):
    """A head for features shaped like train's, fitted on (features, labels) pairs, built
    and trained under the tf.distribute strategy, each epoch logged to live (dvclive)."""
    (train_x, train_y), (val_x, val_y) = train, val
    phase, count = params["transfer"], len(class_names)
    size = phase["batch_size"]
    steps = steps_per_epoch(len(train_y), size)
    multi_label = params["task"] == "multi_label"
    weights = positive_weights(params["class_weight"], class_names, train_y) if multi_label else None
    with strategy.scope():
        head = model_lib.build_head(train_x.shape[1:], count, **params["head"],
                                    multi_label=multi_label)
        compile_model(head, phase, steps, jit_compile, multi_label, weights)

    def train_batches(epochs):
        return one_hot(training_batches(train_x, train_y, size, params["seed"], epochs), count)
    metrics = fit(head, (train_batches, steps), one_hot(batches(val_x, val_y, size), count),
                  phase, live, backup,
                  class_weight=class_weights(params["class_weight"], class_names, train_y))
    return head, metrics
