"""A whole PyTorch model's state_dict, as users have them: an embedding and a 2-layer LSTM under
`encoder.`, and a Linear head, saved with safetensors.torch.save_file in f32, f16 and bf16, and
the model's outputs and gradients for tests/interop.rs to reproduce (PyTorch as the oracle);
and an LSTM with projections (proj_size), which `inspect` lists and loading refuses clearly.

    python3 tests/data/interop/gen_whole_model.py   # rewrites the files beside this script
"""

from pathlib import Path

import torch
from safetensors.torch import save_file

HERE = Path(__file__).parent
VOCAB, EMBED, HIDDEN, CLASSES = 11, 6, 7, 3
BATCH, SEQ = 3, 5


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(VOCAB, EMBED, padding_idx=0)
        self.rnn = torch.nn.LSTM(EMBED, HIDDEN, num_layers=2, batch_first=True)


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.head = torch.nn.Linear(HIDDEN, CLASSES)

    def forward(self, ids):
        out, (h_n, c_n) = self.encoder.rnn(self.encoder.embedding(ids))
        return self.head(out), h_n, c_n


def main():
    torch.manual_seed(0)
    model = Model().double()
    ids = torch.tensor([[1, 4, 0, 9, 10], [3, 0, 0, 2, 5], [7, 8, 6, 1, 0]])
    weights = torch.linspace(-1.0, 1.0, BATCH * SEQ * CLASSES, dtype=torch.float64)
    expected = {"ids": ids.to(torch.int64)}
    for dtype, name in [(torch.float32, "f32"), (torch.float16, "f16"), (torch.bfloat16, "bf16")]:
        state = {k: v.to(dtype).contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(HERE / f"whole_model_{name}.safetensors"), metadata={"format": "pt"})
        # What the stored weights compute, in f64: a reader converting them to f32 must match.
        stored = Model().double()
        stored.load_state_dict({k: v.double() for k, v in state.items()})
        logits, h_n, c_n = stored(ids)
        loss = (logits.reshape(-1) * weights).sum()
        loss.backward()
        expected[f"{name}.logits"] = logits.detach()
        expected[f"{name}.h_n"] = h_n.detach()
        expected[f"{name}.c_n"] = c_n.detach()
        expected[f"{name}.grad_embedding"] = stored.encoder.embedding.weight.grad
        expected[f"{name}.grad_head_weight"] = stored.head.weight.grad
    expected["loss_weights"] = weights
    save_file(
        {k: v.contiguous() for k, v in expected.items()},
        str(HERE / "whole_model_expected.safetensors"),
        metadata={"torch": torch.__version__},
    )


def projected():
    """An LSTM with projections (proj_size), for inspect and a clear refusal on load."""
    torch.manual_seed(1)
    lstm = torch.nn.LSTM(3, 5, proj_size=2)
    state = {k: v.contiguous() for k, v in lstm.state_dict().items()}
    save_file(state, str(HERE / "lstm_proj.safetensors"), metadata={"format": "pt"})


if __name__ == "__main__":
    main()
    projected()
