"""PyTorch's answers for tests/torch_options.rs (PyTorch as the oracle): cross-entropy with
weight / ignore_index / reduction, SGD with weight decay and Nesterov, a bidirectional packed
many-to-one classifier's SGD step, the same over an embedding of token ids, and a model with
dropout in eval mode.

    python3 tests/data/torch/gen_cases.py   # rewrites the .safetensors files beside it
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = Path(__file__).parent


def save(name, tensors, **meta):
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(HERE / name), metadata=meta)


def losses():
    torch.manual_seed(1)
    logits = torch.randn(7, 5, dtype=torch.float64)
    targets = torch.tensor([0, 3, 4, 3, 1, 2, 4])
    weight = torch.tensor([0.5, 1.0, 2.0, 0.25, 1.5], dtype=torch.float64)
    out = {"logits": logits, "targets": targets, "weight": weight}
    cases = {
        "mean": {},
        "sum": {"reduction": "sum"},
        "none": {"reduction": "none"},
        "weighted_mean": {"weight": weight},
        "ignore_mean": {"ignore_index": 3},
        "weighted_ignore_sum": {"weight": weight, "ignore_index": 3, "reduction": "sum"},
        "weighted_ignore_none": {"weight": weight, "ignore_index": 3, "reduction": "none"},
    }
    for name, kwargs in cases.items():
        x = logits.clone().requires_grad_()
        loss = F.cross_entropy(x, targets, **kwargs)
        loss.sum().backward()
        out[f"{name}.loss"] = loss.detach().reshape(-1)
        out[f"{name}.grad"] = x.grad
    save("cross_entropy.safetensors", out, ignore_index="3")


def sgd():
    torch.manual_seed(2)
    p0 = torch.randn(6, dtype=torch.float64)
    grads = [torch.randn(6, dtype=torch.float64) for _ in range(3)]
    out = {"p0": p0}
    for k, g in enumerate(grads):
        out[f"grad{k}"] = g
    cases = {
        "momentum": dict(lr=0.1, momentum=0.9),
        "weight_decay": dict(lr=0.1, momentum=0.9, weight_decay=0.05),
        "nesterov": dict(lr=0.1, momentum=0.9, nesterov=True),
        "nesterov_weight_decay": dict(lr=0.1, momentum=0.9, weight_decay=0.05, nesterov=True),
        "plain_weight_decay": dict(lr=0.1, weight_decay=0.05),
    }
    for name, kwargs in cases.items():
        p = torch.nn.Parameter(p0.clone())
        opt = torch.optim.SGD([p], **kwargs)
        for g in grads:
            p.grad = g.clone()
            opt.step()
        out[f"{name}.params"] = p.detach()
    save("sgd.safetensors", out)


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.GRU(4, 5, num_layers=2, bidirectional=True)
        self.head = torch.nn.Linear(10, 3)

    def forward(self, x, lengths):
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        _, h_n = self.rnn(packed)
        return self.head(torch.cat([h_n[-2], h_n[-1]], dim=1))


def many_to_one():
    torch.manual_seed(3)
    model = Classifier().double()
    x = torch.randn(6, 4, 4, dtype=torch.float64)  # (T, B, I)
    lengths = torch.tensor([6, 2, 5, 1])
    targets = torch.tensor([2, 0, 1, 2])
    out = {f"before.{k}": v.clone() for k, v in model.state_dict().items()}
    logits = model(x, lengths)
    loss = F.cross_entropy(logits, targets)
    loss.backward()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    opt.step()
    out.update({f"after.{k}": v.clone() for k, v in model.state_dict().items()})
    out.update({"x": x, "lengths": lengths, "targets": targets, "logits": logits.detach(),
                "loss": loss.detach().reshape(1)})
    save("many_to_one.safetensors", out)


class TextClassifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(12, 4, padding_idx=0)
        self.rnn = torch.nn.GRU(4, 5, num_layers=2, bidirectional=True, batch_first=True)
        self.head = torch.nn.Linear(10, 3)

    def forward(self, ids, lengths):
        x = self.embedding(ids)
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, lengths, batch_first=True, enforce_sorted=False
        )
        _, h_n = self.rnn(packed)
        return self.head(torch.cat([h_n[-2], h_n[-1]], dim=1))


def text_classifier():
    torch.manual_seed(5)
    model = TextClassifier().double()
    lengths = torch.tensor([6, 3, 5, 1])
    ids = torch.randint(1, 12, (4, 6))
    for b, n in enumerate(lengths):
        ids[b, n:] = 0  # padding past each row's end
    targets = torch.tensor([2, 0, 1, 1])
    weight = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    out = {f"before.{k}": v.clone() for k, v in model.state_dict().items()}
    logits = model(ids, lengths)
    loss = F.cross_entropy(logits, targets, weight=weight)
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.5).step()
    out.update({f"after.{k}": v.clone() for k, v in model.state_dict().items()})
    out.update({"ids": ids, "lengths": lengths, "targets": targets, "weight": weight,
                "logits": logits.detach(), "loss": loss.detach().reshape(1)})
    save("text_classifier.safetensors", out)


def eval_mode():
    torch.manual_seed(4)
    lstm = torch.nn.LSTM(3, 4, num_layers=3, dropout=0.5).double()
    lstm.eval()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    output, (h_n, c_n) = lstm(x)
    out = {f"lstm.{k}": v for k, v in lstm.state_dict().items()}
    out.update({"x": x, "output": output.detach(), "h_n": h_n.detach(), "c_n": c_n.detach()})
    save("eval_mode.safetensors", out, dropout="0.5")


if __name__ == "__main__":
    losses()
    sgd()
    many_to_one()
    text_classifier()
    eval_mode()
