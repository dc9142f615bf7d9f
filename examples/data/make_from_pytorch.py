#!/usr/bin/env python3
"""Writes the input of examples/from_pytorch.rs: a PyTorch LSTM's state_dict, saved the usual way,
and one batch through it. Run from the repository root: python3 examples/data/make_from_pytorch.py"""
import torch
from safetensors.torch import save_file

torch.manual_seed(0)
lstm = torch.nn.LSTM(input_size=5, hidden_size=8, num_layers=2, batch_first=True, bidirectional=True)
save_file(lstm.state_dict(), "examples/data/lstm_state_dict.safetensors")
x = torch.randn(3, 7, 5)  # (B, T, I): batch_first
with torch.no_grad():
    y, (h, c) = lstm(x)
save_file({"input": x, "output": y.contiguous(), "h_n": h, "c_n": c}, "examples/data/lstm_io.safetensors")
