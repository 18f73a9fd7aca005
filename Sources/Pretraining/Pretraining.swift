// The I-JEPA training run: configuration, data, steps, checkpoints, evaluation.
