"""Which backbone layers fine-tuning trains: blocks, and finetune.unfreeze resolved to them.

finetune.unfreeze is one of:
  N          the top N layers, counting every layer but the input, with or without weights
             (activations, paddings and additions count), as base_model.layers[-N:] does
  "blocks:N" the top N blocks (see backbones.py for how each family groups its layers)
  a block    that block and every block above it (block names win over layer names)
  a layer    that layer and every layer above it
  "all"      the whole backbone;  0: none (the transfer model is kept)
BatchNormalization layers stay frozen unless finetune.train_batchnorm is true.
"""
import re

import keras

from imgclf import backbones
from imgclf.errors import UserError


def backbone_layers(backbone):
    return [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]


def block_names(model_name, layers):
    """The block of each layer, in order (see the block rules in backbones.py)."""
    pattern, template = backbones.block_rule(model_name)
    names, pending = [], 0
    for layer in layers:
        match = re.search(pattern, layer.name)
        if match:
            block = match.expand(template)
            names += [block] * (pending + 1)
            pending = 0
        else:
            pending += 1
    names += [names[-1] if names else "all"] * pending
    # Keep blocks contiguous: a layer that the topological order schedules before the end of
    # the previous block (NASNet's "adjust" layers do) is counted in that previous block.
    rank = {block: i for i, block in enumerate(dict.fromkeys(names))}
    order, lowest = list(rank), len(rank)
    for i in range(len(names) - 1, -1, -1):
        lowest = min(lowest, rank[names[i]])
        names[i] = order[lowest]
    return names


def ordered_blocks(names):
    """Block names bottom to top, each once."""
    return list(dict.fromkeys(names))


def top_layer_count(model_name, backbone, unfreeze):
    """How many top layers finetune.unfreeze means for this backbone; a UserError listing
    what exists when it names nothing or asks for more than there is."""
    layers = backbone_layers(backbone)
    blocks = block_names(model_name, layers)
    order = ordered_blocks(blocks)
    if unfreeze == "all":
        return len(layers)
    if isinstance(unfreeze, int):
        if unfreeze > len(layers):
            raise UserError(f"params.yaml: finetune.unfreeze is {unfreeze}; {model_name} has "
                            f"{len(layers)} layers, so use 0 to {len(layers)} or 'all'")
        return unfreeze
    count = re.fullmatch(r"blocks:(\d+)", unfreeze)
    if count:
        top = int(count.group(1))
        if not 0 < top <= len(order):
            raise UserError(f"params.yaml: finetune.unfreeze is {unfreeze!r}; {model_name} has "
                            f"{len(order)} blocks, so use blocks:1 to blocks:{len(order)}")
        unfreeze = order[-top]
    if unfreeze in order:
        return len(layers) - blocks.index(unfreeze)
    names = [layer.name for layer in layers]
    if unfreeze in names:
        return len(layers) - names.index(unfreeze)
    raise UserError(f"params.yaml: finetune.unfreeze is {unfreeze!r}, which is neither a block "
                    f"nor a layer of {model_name}; its blocks are: {', '.join(order)} "
                    f"(python -m imgclf.inspect_backbone lists its layers)")


def unfreeze_top(backbone, count, train_batchnorm=False):
    """Make the top `count` layers of the backbone trainable and every other layer frozen."""
    layers = backbone_layers(backbone)
    backbone.trainable = count > 0
    for index, layer in enumerate(layers):
        trainable = index >= len(layers) - count
        if isinstance(layer, keras.layers.BatchNormalization) and not train_batchnorm:
            trainable = False
        layer.trainable = trainable
