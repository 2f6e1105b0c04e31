"""The full classifier that fine-tuning trains, from params: shared by the finetune stage and
the learning-rate finder, so both train the same model with the same settings."""
import keras

from imgclf import model as model_lib
from imgclf import model_params


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
