#!/usr/bin/env python3
"""More PyTorch reference cases of shapes the public set does not cover: odd sizes, three
layers, bidirectional stacks, a long sequence (T=300), batch 1, and every mode; and training
cases (kind=train) of other modes, depths and clipping.

Uses `layer_case` from gen_cases.py (the public generator, copied beside this file), so the
format is identical. Run with torch and safetensors installed:

    python3 tests/data/parity/gen_shapes.py tests/data/parity/shapes
"""
import json, pathlib, sys

from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from gen_cases import layer_case, train_case  # noqa: E402

HELDOUT = [
    # name, mode, I, H, L, B, T, bidirectional, seed
    ("rnn_tanh_odd_3layer_bidir", "RNN_TANH", 7, 13, 3, 5, 9, True, 101),
    ("rnn_relu_long_b1", "RNN_RELU", 3, 9, 1, 1, 300, False, 102),
    ("lstm_odd_3layer", "LSTM", 11, 17, 3, 3, 7, False, 103),
    ("lstm_long_b1", "LSTM", 5, 10, 1, 1, 300, False, 104),
    ("lstm_bidir_3layer_odd", "LSTM", 9, 15, 3, 2, 11, True, 105),
    ("gru_odd_3layer_bidir", "GRU", 13, 11, 3, 4, 6, True, 106),
    ("gru_long_b1_bidir", "GRU", 4, 8, 2, 1, 300, True, 107),
    ("gru_t1", "GRU", 6, 33, 1, 7, 1, False, 108),
    ("lstm_t1_b1", "LSTM", 1, 1, 2, 1, 1, True, 109),
]

TRAIN = [
    # name, mode, V, H, L, B, T, steps, lr, clip, seed
    ("train_rnn_tanh_clipped", "RNN_TANH", 7, 9, 1, 3, 5, 6, 5e-2, 0.1, 201),
    ("train_rnn_relu_2layer", "RNN_RELU", 5, 6, 2, 2, 7, 4, 1e-2, 1.0, 202),
    ("train_lstm_3layer_odd", "LSTM", 13, 11, 3, 5, 9, 4, 3e-3, 0.5, 203),
    ("train_gru_long_b1", "GRU", 6, 10, 1, 1, 40, 3, 2e-2, 1.0, 204),
]

if __name__ == "__main__":
    out = pathlib.Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
    for name, mode, I, H, L, B, T, bidir, seed in HELDOUT:
        _, tensors, meta = layer_case(name, mode, I, H, L, B, T, bidir, seed)
        save_file(tensors, str(out / f"{name}.safetensors"), metadata=meta)
        print(name, json.dumps(meta))
    for name, mode, V, H, L, B, T, steps, lr, clip, seed in TRAIN:
        _, tensors, meta = train_case(name, mode, V, H, L, B, T, steps, lr, clip, seed)
        save_file(tensors, str(out / f"{name}.safetensors"), metadata=meta)
        print(name, json.dumps(meta))
