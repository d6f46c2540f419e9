#!/usr/bin/env python3
"""The training of examples/mlp.c in PyTorch, for a side-by-side timing.

Same network (784-256-128-10, ReLU, softmax cross-entropy), initialisation
(He normal weights, zero biases), optimiser (Adam lr 1e-3, betas 0.9/0.999,
eps 1e-8, or SGD with heavy-ball momentum), batch size, epochs, full batches
only (drop_last), and the same gzip IDX files.  Like mlp.c, the whole data
set lives on the device and each batch is gathered there by index, so the
per-epoch time measures the training itself.  Runs on CUDA if available.

    python3 examples/mlp_torch.py [--data DIR] [--epochs N] [--batch N]
        [--lr X] [--seed N] [--limit N] [--optimizer adam|momentum]
        [--momentum X] [--device cuda|cpu]
"""
import argparse
import gzip
import struct
import time

import numpy as np
import torch
import torch.nn as nn

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path, dims):
    """An IDX file of unsigned bytes as a numpy array of `dims` dimensions."""
    with gzip.open(path, "rb") as f:
        magic = f.read(4)
        if magic[:3] != b"\x00\x00\x08" or magic[3] != dims:
            raise ValueError(f"{path}: not an IDX file of bytes with {dims} dimensions")
        shape = struct.unpack(">" + "I" * dims, f.read(4 * dims))
        data = np.frombuffer(f.read(), dtype=np.uint8)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {data.size} elements, header says {shape}")
    return data.reshape(shape)


def load(directory, prefix, device, limit=0):
    images = read_idx(f"{directory}/{prefix}-images-idx3-ubyte.gz", 3)
    labels = read_idx(f"{directory}/{prefix}-labels-idx1-ubyte.gz", 1)
    if limit:
        images, labels = images[:limit], labels[:limit]
    x = torch.tensor(images.reshape(len(images), -1), dtype=torch.float32, device=device) / 255.0
    y = torch.tensor(labels, dtype=torch.long, device=device)
    return x, y


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=None,
                   help="default 0.001 for adam, 0.05 for momentum")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--optimizer", choices=["adam", "momentum"], default="adam")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    lr = args.lr if args.lr is not None else (1e-3 if args.optimizer == "adam" else 0.05)

    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    x_train, y_train = load(args.data, "train", device, args.limit)
    x_test, y_test = load(args.data, "t10k", device)

    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(),
                          nn.Linear(256, 128), nn.ReLU(),
                          nn.Linear(128, 10)).to(device)
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    if args.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
        what = f"Adam (lr {lr:g})"
    else:
        # PyTorch's SGD momentum is the same heavy-ball form as mlp.c:
        # v = mu v + g; w -= lr v.
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=args.momentum)
        what = f"SGD (lr {lr:g}, momentum {args.momentum:g})"
    loss_fn = nn.CrossEntropyLoss()

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name} (PyTorch {torch.__version__})")
    print(f"network: 784-256-128-10 ReLU, softmax cross-entropy, {what}, batch {args.batch}, "
          f"seed {args.seed}, f32")
    n = len(x_train)
    batches = n // args.batch
    print(f"data: {n} training images (full batches of {args.batch}: {batches * args.batch} "
          f"per epoch), {len(x_test)} test images\n")

    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    total = 0.0
    for epoch in range(1, args.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        sync(device)
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        for b in range(batches):
            idx = perm[b * args.batch:(b + 1) * args.batch]
            xb, yb = x_train[idx], y_train[idx]
            logits = model(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
            correct += (logits.detach().argmax(1) == yb).sum()
        sync(device)
        t1 = time.perf_counter()
        if epoch > 1 or args.epochs == 1:  # epoch 1 pays for CUDA start-up, as in mlp.c
            total += t1 - t0

        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(x_test[i:i + args.batch])
                                for i in range(0, len(x_test), args.batch)])
            test_loss = loss_fn(logits, y_test).item()
            pred = logits.argmax(1)
            test_acc = (pred == y_test).float().mean().item()
        sync(device)
        t2 = time.perf_counter()
        seen = batches * args.batch
        print(f"epoch {epoch:2d}/{args.epochs}  loss {loss_sum.item() / batches:.4f}  "
              f"train acc {100.0 * correct.item() / seen:6.2f}%  test acc {100 * test_acc:6.2f}%  "
              f"(test loss {test_loss:.4f})  time {t1 - t0:.3f} s  {seen / (t1 - t0):.0f} images/s  "
              f"eval {t2 - t1:.3f} s", flush=True)

    confusion = torch.zeros(10, 10, dtype=torch.long)
    for t, q in zip(y_test.cpu().tolist(), pred.cpu().tolist()):
        confusion[t, q] += 1
    print("\nconfusion matrix on the test set (rows: true class, columns: predicted)")
    print(" " * 12 + "".join(f" {j:5d}" for j in range(10)) + "   accuracy")
    for i in range(10):
        row = confusion[i]
        print(f"{i} {CLASSES[i]:<10}" + "".join(f" {int(v):5d}" for v in row)
              + f"   {100.0 * int(row[i]) / max(1, int(row.sum())):6.2f}%")
    timed = max(1, args.epochs - 1)
    print(f"\nfinal test accuracy {100 * test_acc:.2f}%; mean training time "
          f"{total / timed:.3f} s per epoch ({seen * timed / total:.0f} images/s)"
          + (", epoch 1 excluded" if args.epochs > 1 else ""))


if __name__ == "__main__":
    main()
