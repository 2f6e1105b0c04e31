"""Library behind the pipeline stages: params, backbones, images, models, training."""
