"""The full classifier that fine-tuning trains, from params: shared by the finetune stage and
the learning-rate finder, so both train the same model with the same settings."""
import keras
import numpy as np

from imgclf import model as model_lib
from imgclf import model_params

ABSENT_LOGIT = -1e4  # a class with no train image: exp() of it is 0 in float32


def from_scratch(params):
    """weights: none trains every layer, BatchNormalization included and in training mode:
    random weights have no statistics worth keeping frozen."""
    return params["weights"] == "none"


def scratch_phase(params, backbone):
    """The training settings from scratch: transfer.*, the phase that trains weights from
    their initialisation (finetune.*'s low rate is for nudging trained ones), every layer.
    BatchNormalization's moving statistics follow the changing weights faster (momentum 0.9,
    PyTorch's default, not Keras' 0.99): with 0.99 the digits reached train accuracy 1.00
    and 0.10 in inference mode, on statistics that lagged the weights."""
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    return {**params["transfer"], "unfreeze": "all", "train_batchnorm": True}


def assemble(params, head, class_names, prepared_resolution, multi_label=False):
    """The full classifier with the trained head, everything frozen."""
    extractor = model_lib.feature_extractor(
        params["model"], params["weights"], model_params.input_size(params),
        model_params.backbone_args(params))
    return model_lib.full_model(extractor, head, class_names, prepared_resolution, multi_label)


def probe_candidate(params, probe_path, like):
    """The full classifier with the linear probe of probe_path as its head (probe_head),
    for the classes, image sizes and task of the model `like`, and for multi_label the
    probe's own thresholds: a candidate final model like any other. None when the run has no
    probe (weights: none)."""
    from imgclf import probe as probe_lib

    arrays = probe_lib.load(probe_path)
    if arrays is None:
        return None
    class_names = model_lib.class_names(like)
    multi_label = model_lib.is_multi_label(like)
    head = probe_head(arrays, like.get_layer("head").input_shape[1:], len(class_names))
    model = assemble(params, head, class_names, model_lib.prepared_resolution(like), multi_label)
    if multi_label:
        model_lib.set_thresholds(model, arrays["thresholds"])
    return model


def start_model(params, phase, transfer_model, probe_path):
    """(the model fine-tuning starts from, "probe" or "transfer"). finetune.start: probe is
    LP-FT (Kumar et al., ICLR 2022): the backbone is tuned under the linear probe's head, a
    good fit for the features from the first step, so the early updates do not distort them
    to suit a head that does not fit yet. Without a probe (weights: none) the transfer model."""
    if phase.get("start") == "probe":
        probe = probe_candidate(params, probe_path, transfer_model)
        if probe is not None:
            return probe, "probe"
    return transfer_model, "transfer"


def probe_head(arrays, feature_shape, class_count):
    """The probe as a Keras head (imgclf.model.build_head's, with no hidden layer): pooling,
    then one Dense layer whose weights fold in the standardisation, so that a full model made
    with it (model.full_model) gives probabilities() and works wherever a trained head does.
    A class the train split lacked gets a zero column and a bias that makes it 0."""
    multi_label = bool(arrays["multi_label"])
    head = model_lib.build_head(feature_shape, class_count, str(arrays["pooling"]), [], 0.0,
                      multi_label=multi_label)
    # (x - mean) / scale @ coef.T + intercept == x @ kernel + bias
    kernel_rows = (arrays["coef"] / arrays["scale"]).T
    bias_rows = arrays["intercept"] - (arrays["mean"] / arrays["scale"]) @ arrays["coef"].T
    kernel = np.zeros((kernel_rows.shape[0], class_count))
    bias = np.full(class_count, 0.0 if multi_label else ABSENT_LOGIT)
    if multi_label:
        kernel, bias = kernel_rows, bias_rows
    elif kernel_rows.shape[1] == 1:  # binary: softmax over (0, z) is the sigmoid of z
        first, second = arrays["classes"]
        kernel[:, second], bias[first], bias[second] = kernel_rows[:, 0], 0.0, bias_rows[0]
    else:
        kernel[:, arrays["classes"]], bias[arrays["classes"]] = kernel_rows, bias_rows
    head.get_layer("predictions").set_weights([kernel.astype("float32"),
                                               bias.astype("float32")])
    return head
