import inspect
import os
import subprocess
import sys
import urllib.error

import keras
import numpy as np
import pytest

from imgclf import backbones
from imgclf.errors import UserError
from tests.informative import ROOT, pretrained_weights


def test_registry_names_and_sizes_are_consistent():
    for name in backbones.REGISTRY:
        assert name == name.lower()
        assert backbones.min_size(name) <= backbones.native_size(name)
        assert callable(backbones.constructor(name))
        assert callable(backbones.preprocess_input(name))
    assert "mobilenet_v2" in backbones.describe()


def test_offline_imagenet_weights_fail_with_the_file_and_the_way_out(tmp_path, monkeypatch):
    """No cached file and no network: one clear error, never random weights."""
    from keras.src.backend import config
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(config, "keras_home", lambda: str(tmp_path))
    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    with pytest.raises(UserError) as error:
        backbones.build_backbone("vgg16", "imagenet", 64)
    message = str(error.value)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert os.path.join(str(tmp_path), "models") in message
    assert "weights: none" in message and "\n" not in message


def test_weights_from_a_file_path_are_the_real_ones():
    path = pretrained_weights()
    pretrained = backbones.build_backbone("mobilenet_v2", path, 96, {"alpha": 0.35})
    random = backbones.build_backbone("mobilenet_v2", "none", 96, {"alpha": 0.35})
    assert pretrained.name == "backbone"
    kernel = pretrained.get_layer("Conv1").kernel
    assert not np.allclose(keras.ops.convert_to_numpy(kernel),
                           keras.ops.convert_to_numpy(random.get_layer("Conv1").kernel))
    # ImageNet BatchNorm statistics are not the fresh layer's zeros and ones.
    assert not np.allclose(keras.ops.convert_to_numpy(pretrained.get_layer("bn_Conv1").moving_mean), 0)


def test_the_written_out_constructor_arguments_match_keras():
    """backbones.EXTRA_ARGS spares params validation a TensorFlow import; it must stay what
    each keras.applications constructor accepts beyond the arguments the pipeline sets."""
    for name in backbones.REGISTRY:
        accepted = set(inspect.signature(backbones.constructor(name)).parameters)
        assert sorted(accepted - backbones.MANAGED_ARGS) == sorted(backbones.extra_args(name)), name


def test_validating_params_imports_no_tensorflow():
    """The data stages (sample, split, preprocess) load params: 4 s of TensorFlow import each
    if validation needed Keras."""
    code = ("import sys, yaml; from imgclf import params; "
            "params.validate(yaml.safe_load(open('params.yaml', encoding='utf-8'))); "
            "import stages.sample, stages.split, stages.preprocess; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_every_entry_point_lets_gpu_memory_grow_unless_the_user_says_otherwise():
    """Two queued experiments on one GPU: without memory growth the first takes it all."""
    code = ("import os, imgclf.predict, tensorflow; "
            "print(os.environ.get('TF_FORCE_GPU_ALLOW_GROWTH'))")
    env = {key: value for key, value in os.environ.items() if key != "TF_FORCE_GPU_ALLOW_GROWTH"}
    for setting, expected in [(None, "true"), ("false", "false")]:
        if setting:
            env["TF_FORCE_GPU_ALLOW_GROWTH"] = setting
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                                text=True, env=env)
        assert result.stdout.strip().splitlines()[-1] == expected, result.stderr[-2000:]
