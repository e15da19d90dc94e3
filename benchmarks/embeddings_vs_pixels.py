"""With 100 labels: a linear classifier on autoencoder embeddings, on raw pixels, and a convnet from scratch.

    python -m zoo.fit --recipe autoencoder_fashionmnist          # the autoencoder; it never sees a label
    python benchmarks/embeddings_vs_pixels.py --ckpt_path runs/autoencoder_fashionmnist/<time>/best.ckpt --seeds 5

For each seed, 100 labelled images are drawn from the DataModule's training split (10 per class). Then, each
scored by its accuracy on the whole test split:

- autoencoder embeddings: multinomial logistic regression on the autoencoder's embeddings
  (``zoo.embed.embed_split``);
- raw pixels: the same classifier on the 784 pixels;
- untrained autoencoder embeddings: the same classifier on the embeddings of an untrained autoencoder of the
  same shape (a control: what training the autoencoder adds);
- convnet from scratch: the small convnet (``convnet``) trained on the 100 images alone.

The logistic regression is fitted by L-BFGS on standardised features (per-feature mean and standard deviation
over the whole training split, whose labels are not used), with an L2 penalty chosen from a grid by 5-fold
cross-validation (lowest held-out cross-entropy) on the 100 labelled images alone. The convnet trains with Adam
(lr 1e-3) for a fixed number of full-batch steps, no augmentation; with 100 labels there is no validation set to
tune it on. Nothing is tuned on the test split.

Prints one row per seed, then the mean, standard deviation, minimum and maximum over the seeds, and each
method's difference from logistic regression on raw pixels, draw by draw.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.cli.embed import load_autoencoder
from zoo.cli.environment import hardware, quiet_defaults
from zoo.models import create_model
from zoo.tasks.autoencoder import AutoencoderTask
from zoo.tasks.embeddings import embed_split

#: L2 penalties tried by the cross-validation of the logistic regression
PENALTIES = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
FOLDS = 5


def draw_labelled(labels: Tensor, per_class: int, seed: int) -> Tensor:
    """Indices of ``per_class`` images of every class, drawn with ``seed``; ordered class by class."""
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in labels.unique(sorted=True):
        members = (labels == label).nonzero().flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.stack(chosen, dim=1).flatten()  # class-interleaved: 0, 1, ..., 9, 0, 1, ...


def standardiser(train: Tensor) -> tuple[Tensor, Tensor]:
    """Per-feature mean and standard deviation of ``(N, D)`` features (floored: some pixels are nearly constant)."""
    return train.mean(dim=0), train.std(dim=0).clamp_min(1e-2)


def fit_logistic(x: Tensor, y: Tensor, penalty: float, classes: int) -> tuple[Tensor, Tensor]:
    """Weights ``(D, K)`` and bias ``(K,)`` minimising mean cross-entropy + ``penalty / 2 * |W|^2``."""
    weight = torch.zeros(x.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [weight, bias], lr=1, max_iter=200, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + penalty / 2 * weight.square().sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return weight.detach(), bias.detach()


def logistic_accuracy(
    train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor
) -> tuple[float, float]:
    """Test accuracy of logistic regression with its penalty chosen by cross-validation; and that penalty.

    The penalty is the one with the lowest held-out cross-entropy: with 100 images the held-out accuracy of
    several penalties is often the same, while the cross-entropy also sees how overconfident each is.
    """
    classes = int(test_y.max()) + 1
    folds = torch.arange(len(train_y)) % FOLDS  # train_y is class-interleaved: every fold has every class

    def cv_loss(penalty: float) -> float:
        total = 0.0
        for fold in range(FOLDS):
            held = folds == fold
            weight, bias = fit_logistic(train_x[~held], train_y[~held], penalty, classes)
            total += float(F.cross_entropy(train_x[held] @ weight + bias, train_y[held], reduction="sum"))
        return total / len(train_y)

    best = min(PENALTIES, key=cv_loss)
    weight, bias = fit_logistic(train_x, train_y, best, classes)
    return float(((test_x @ weight + bias).argmax(dim=1) == test_y).float().mean()), best


def convnet_accuracy(
    images: Tensor, labels: Tensor, test_images: Tensor, test_labels: Tensor, *, steps: int, seed: int
) -> float:
    """Test accuracy of ``convnet`` trained from scratch, full batch, on ``images``."""
    torch.manual_seed(seed)
    net = create_model("convnet", num_classes=int(test_labels.max()) + 1, in_channels=images.shape[1])
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for _ in range(steps):
        optimiser.zero_grad()
        F.cross_entropy(net(images), labels).backward()
        optimiser.step()
    net.eval()
    with torch.no_grad():
        predicted = torch.cat([net(chunk).argmax(dim=1) for chunk in test_images.split(1000)])
    return float((predicted == test_labels).float().mean())


def main() -> None:
    """Parse the arguments, run every seed, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt_path", required=True, help="an autoencoder checkpoint written by zoo fit")
    parser.add_argument("--recipe", help="its recipe, when the checkpoint is not in its run folder")
    parser.add_argument("--seeds", type=int, default=5, help="draws of the 100 labelled images")
    parser.add_argument("--per_class", type=int, default=10, help="labelled images per class")
    parser.add_argument("--convnet_steps", type=int, default=200, help="full-batch Adam steps of the convnet")
    options, overrides = parser.parse_known_args()
    started = time.perf_counter()
    quiet_defaults()

    task, data = load_autoencoder(options.ckpt_path, recipe=options.recipe, overrides=overrides)
    task.cpu()
    train_emb, train_y = embed_split(task, data, "train")
    test_emb, test_y = embed_split(task, data, "test")
    # the same splits, as the DataModule holds them: uint8 (N, C, H, W), in the order embed_split used
    train_u8, test_u8 = data.splits["train"][0], data.splits["test"][0]
    assert torch.equal(data.splits["train"][1], train_y) and torch.equal(data.splits["test"][1], test_y)
    torch.manual_seed(0)
    untrained = AutoencoderTask(**{k: v for k, v in task.hparams.items() if not k.startswith("_")}).eval()
    untrained_train, _ = embed_split(untrained, data, "train")
    untrained_test, _ = embed_split(untrained, data, "test")

    pixels_train, pixels_test = (x.flatten(1).float() / 255 for x in (train_u8, test_u8))
    # (train, test) features of each representation, standardised with the statistics of the whole training split
    features: dict[str, tuple[Tensor, Tensor]] = {}
    for name, (train_x, test_x) in {
        "autoencoder embeddings": (train_emb, test_emb),
        "raw pixels": (pixels_train, pixels_test),
        "untrained autoencoder embeddings": (untrained_train, untrained_test),
    }.items():
        mean, std = standardiser(train_x)
        features[name] = (train_x - mean) / std, (test_x - mean) / std
    shape = (1, -1, 1, 1)

    def normalise(images: Tensor) -> Tensor:  # as the DataModule feeds its networks
        return (images.float() / 255 - data.mean.view(shape)) / data.std.view(shape)

    test_images = normalise(test_u8)
    prepared = time.perf_counter() - started

    methods = [*((name, "logistic regression") for name in features), ("raw pixels", "convnet from scratch")]
    results: dict[tuple[str, str], list[float]] = {method: [] for method in methods}
    print(
        "accuracy on the test split, per draw of the labelled images (L2: the penalty cross-validation chose)"
    )
    for seed in range(options.seeds):
        chosen = draw_labelled(train_y, options.per_class, seed)
        cells = []
        for name, (train_x, test_x) in features.items():
            accuracy, penalty = logistic_accuracy(train_x[chosen], train_y[chosen], test_x, test_y)
            results[name, "logistic regression"].append(accuracy)
            cells.append(f"{name}: {accuracy:.4f} (L2 {penalty:g})")
        accuracy = convnet_accuracy(
            normalise(train_u8[chosen]),
            train_y[chosen],
            test_images,
            test_y,
            steps=options.convnet_steps,
            seed=seed,
        )
        results["raw pixels", "convnet from scratch"].append(accuracy)
        cells.append(f"convnet: {accuracy:.4f}")
        print(f"seed {seed}: " + "; ".join(cells), flush=True)

    print(f"\n{len(test_y)} test images, {len(chosen)} labels, {options.seeds} draws\n")
    print("| features | classifier | mean | sd | min | max |")
    print("|---|---|---|---|---|---|")
    for (name, classifier), values in results.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(
            f"| {name} | {classifier} | {statistics.mean(values):.2%} | {spread:.2%} | "
            f"{min(values):.2%} | {max(values):.2%} |"
        )
    # the same draw of labels for every method: differences per draw are less noisy than the spread of each
    baseline = results["raw pixels", "logistic regression"]
    print("\npaired with logistic regression on raw pixels (same draws): mean difference, sd, draws better")
    for (name, classifier), values in results.items():
        if (name, classifier) != ("raw pixels", "logistic regression"):
            gaps = [value - base for value, base in zip(values, baseline, strict=True)]
            spread = statistics.stdev(gaps) if len(gaps) > 1 else 0.0
            better = sum(gap > 0 for gap in gaps)
            print(
                f"  {classifier} on {name}: {statistics.mean(gaps):+.2%}, sd {spread:.2%}, {better}/{len(gaps)}"
            )
    total = time.perf_counter() - started
    print(
        f"\n{hardware()}; {dt.date.today().isoformat()}; embedding {prepared:.0f} s, total {total:.0f} s; "
        f"{len(train_y)} unlabelled training images, embedding size {train_emb.shape[1]}"
    )


if __name__ == "__main__":
    main()
