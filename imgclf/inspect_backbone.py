"""Every layer of the configured backbone: index, name, type, parameters, whether the
finetune stage would train it with the current params, and its block.

    python -m imgclf.inspect_backbone                  # as params.yaml configures it
    python -m imgclf.inspect_backbone xception         # another backbone, same params
    python -m imgclf.inspect_backbone vgg16 blocks:2   # and another finetune.unfreeze

Built with random weights: the structure is the same, and nothing is downloaded.
"""
import sys

from imgclf import backbones
from imgclf import model_params
from imgclf.errors import run_stage
from imgclf.unfreeze import backbone_layers, block_names, top_layer_count, unfreeze_top


def layer_table(model_name, backbone, unfreeze, train_batchnorm):
    """Rows (index, name, type, parameters, trainable, block) and the unfrozen count."""
    count = top_layer_count(model_name, backbone, unfreeze)
    unfreeze_top(backbone, count, train_batchnorm)
    layers = backbone_layers(backbone)
    rows = [(index, layer.name, type(layer).__name__, layer.count_params(),
             layer.trainable and bool(layer.weights), block)
            for index, (layer, block) in enumerate(zip(layers, block_names(model_name, layers)))]
    return rows, count


def main():
    params = model_params.load()
    if len(sys.argv) > 1:
        params = model_params.validate({**params, "model": sys.argv[1], "image_size": None})
    if len(sys.argv) > 2:
        unfreeze = int(sys.argv[2]) if sys.argv[2].isdigit() else sys.argv[2]
        params["finetune"]["unfreeze"] = unfreeze
    name, phase = params["model"], params["finetune"]
    backbone = backbones.build_backbone(name, "none", model_params.input_size(params),
                                        model_params.backbone_args(params))
    rows, count = layer_table(name, backbone, phase["unfreeze"], phase["train_batchnorm"])
    print(f"{'index':>5}  {'name':<44} {'type':<26} {'params':>10}  {'train':<5}  block")
    for index, layer_name, kind, count_params, trainable, block in rows:
        print(f"{index:>5}  {layer_name:<44} {kind:<26} {count_params:>10,}  "
              f"{'yes' if trainable else '-':<5}  {block}")
    trainable = sum(r[3] for r in rows if r[4])
    print(f"{name}: {len(rows)} layers in {len(dict.fromkeys(r[5] for r in rows))} blocks, "
          f"{sum(r[3] for r in rows):,} parameters; finetune.unfreeze={phase['unfreeze']!r} "
          f"unfreezes the top {count} layers: {trainable:,} trainable parameters "
          f"(BatchNormalization {'trained' if phase['train_batchnorm'] else 'frozen'})")


if __name__ == "__main__":
    run_stage(main)
