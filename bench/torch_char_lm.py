#!/usr/bin/env python3
"""PyTorch peer of `rnn-wgpu train`: the same character model, data split, batching, optimizer,
clipping and wall-clock budget, so the two validation losses compare.

Model: one_hot(char, V) -> torch.nn.LSTM/GRU/RNN(V, H, L) -> Linear(H, V), mean cross-entropy.
Data: the first 90% of the text for training, cut into B contiguous streams; batch k takes
characters [kT, (k+1)T] of every stream, the hidden state carried (detached) from batch to batch
and reset when the streams start over. Adam(lr), clip_grad_norm_(clip) every step.
Validation: mean cross-entropy per character over the last 10%, in consecutive windows of T
characters, each from a zero state. The last line printed is val_loss=<nats per char>.

usage: torch_char_lm.py [--data F] [--cell lstm] [--hidden 256] [--layers 2] [--seq 64]
                        [--batch 32] [--lr 2e-3] [--clip 1.0] [--seconds 300] [--threads N]
"""
import argparse, math, time
import torch

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/tinyshakespeare.txt")
    ap.add_argument("--cell", default="lstm"); ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2); ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32); ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--clip", type=float, default=1.0); ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--threads", type=int); ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dropout", type=float, default=0.0)
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    text = open(a.data, encoding="utf-8").read()
    vocab = sorted(set(text)); index = {c: i for i, c in enumerate(vocab)}; V = len(vocab)
    ids = torch.tensor([index[c] for c in text])
    split = len(ids) * 9 // 10
    train, val = ids[:split], ids[split:]
    T, B = a.seq, a.batch
    stream_len = len(train) // B
    streams = train[:stream_len * B].view(B, stream_len)
    per_epoch = (stream_len - 1) // T
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[a.cell]
    rnn = cls(V, a.hidden, a.layers, dropout=a.dropout); head = torch.nn.Linear(a.hidden, V)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=a.lr)
    state, step, start = None, 0, time.perf_counter()
    while time.perf_counter() - start < a.seconds:
        k = step % per_epoch
        if k == 0: state = None
        chunk = streams[:, k * T:k * T + T + 1].t()  # (T+1, B)
        x = torch.nn.functional.one_hot(chunk[:-1], V).float()
        out, state = rnn(x, state)
        loss = torch.nn.functional.cross_entropy(head(out).reshape(-1, V), chunk[1:].reshape(-1))
        opt.zero_grad(); loss.backward()
        torch.nn.utils.clip_grad_norm_(params, a.clip); opt.step()
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        step += 1
    elapsed = time.perf_counter() - start
    rnn.eval()  # no dropout in validation
    with torch.no_grad():
        windows = [val[i:i + T + 1] for i in range(0, len(val) - T, T)]
        total, count = 0.0, 0
        for g in range(0, len(windows), B):
            w = torch.stack(windows[g:g + B], 1)  # (T+1, n)
            out, _ = rnn(torch.nn.functional.one_hot(w[:-1], V).float())
            total += torch.nn.functional.cross_entropy(head(out).reshape(-1, V), w[1:].reshape(-1), reduction="sum").item()
            count += w[1:].numel()
    print(f"pytorch {torch.__version__}: {step} steps in {elapsed:.1f} s ({step * T * B / elapsed:.0f} chars/s), "
          f"last training loss {loss.item():.4f}, validation perplexity {math.exp(total / count):.2f}")
    print(f"val_loss={total / count:.4f}")

if __name__ == "__main__":
    main()
