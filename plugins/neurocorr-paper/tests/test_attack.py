"""FGSM against the closed-form gradient of a linear softmax classifier."""

from typing import cast

import numpy as np
import pytest
import torch
from torch import nn

from neurocorr_core import NeurocorrError
from neurocorr_paper.attack import fgsm, transfer_attack


def linear_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


def reference_step(model: nn.Sequential, x: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    """d CE / d x = W^T (softmax(W x + b) - onehot(y)), in float64 numpy."""
    lin = cast(nn.Linear, model[1])
    w, b = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()
    flat = x.reshape(len(x), -1).astype(np.float64)
    logits = flat @ w.T + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    grad = p @ w
    return np.clip(flat + eps * np.sign(grad), 0.0, 1.0).reshape(x.shape)


def data(n: int = 40, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    return (torch.from_numpy(rng.uniform(0, 1, (n, 1, 4, 4)).astype(np.float32)),
            torch.from_numpy(rng.integers(0, 3, n)))


def test_fgsm_matches_closed_form_gradient_sign():
    model = linear_model()
    x, y = data()
    got = fgsm(model, x, y, eps=0.05, batch_size=7).numpy()  # odd batch: batching must not matter
    want = reference_step(model, x.numpy(), y.numpy(), 0.05)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert got.min() >= 0.0 and got.max() <= 1.0
    assert not np.allclose(got, x.numpy())


def test_rounds_without_refit_are_repeated_steps():
    model = linear_model()
    x, y = data()
    before = [p.detach().clone() for p in model.parameters()]
    got = transfer_attack(model, x, y, rounds=3, eps=0.02, refit="none").numpy()
    want = x.numpy()
    for _ in range(3):
        want = reference_step(model, want, y.numpy(), 0.02).astype(np.float32)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    # no projection to an eps-ball, as in the paper: pixels may move by up to rounds * eps
    assert np.abs(got - x.numpy()).max() <= 3 * 0.02 + 1e-6
    assert np.abs(got - x.numpy()).max() > 0.02 + 1e-6


def test_continue_refit_trains_the_surrogate_and_reports_rounds():
    model = linear_model()
    x, y = data()
    before = [p.detach().clone() for p in model.parameters()]
    seen: list[int] = []
    transfer_attack(model, x, y, rounds=2, eps=0.02, refit="continue", refit_epochs=1, lr=0.05,
                    on_round=seen.append)
    assert seen == [0, 1]
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_fresh_refit_attacks_with_a_new_surrogate_fit_on_the_adversarial_set():
    model = linear_model()
    x, y = data()
    built: list[nn.Sequential] = []

    def build() -> nn.Module:
        built.append(linear_model(seed=len(built) + 7))
        return built[-1]

    before = [p.detach().clone() for p in model.parameters()]
    got = transfer_attack(model, x, y, rounds=3, eps=0.02, refit="fresh", refit_epochs=2, lr=0.05,
                          build=build).numpy()
    assert len(built) == 2  # after rounds 1 and 2; a refit after the last round would be unused
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    x1 = reference_step(model, x.numpy(), y.numpy(), 0.02).astype(np.float32)
    x2 = reference_step(built[0], x1, y.numpy(), 0.02).astype(np.float32)
    x3 = reference_step(built[1], x2, y.numpy(), 0.02)
    np.testing.assert_allclose(got, x3, atol=1e-5)
    # the new surrogates were trained (they differ from their seeded initialisation)
    trained, initial = cast(nn.Linear, built[0][1]), cast(nn.Linear, linear_model(seed=7)[1])
    assert not torch.equal(trained.weight, initial.weight)


def test_refit_errors():
    model = linear_model()
    x, y = data()
    with pytest.raises(NeurocorrError, match="unknown refit 'warm'; choose one of fresh, continue, none"):
        transfer_attack(model, x, y, rounds=1, eps=0.1, refit="warm")
    with pytest.raises(NeurocorrError, match="needs build"):
        transfer_attack(model, x, y, rounds=1, eps=0.1, refit="fresh")


def test_zero_rounds_is_identity():
    model = linear_model()
    x, y = data()
    assert torch.equal(transfer_attack(model, x, y, rounds=0, eps=0.1, refit="none"), x)


def double_softmax_step(model: nn.Sequential, x: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    """The notebook's gradient by hand: L = CE(p, y) with p = softmax(z), z = W x + b, so
    dL/dp = softmax(p) - onehot(y), dL/dz = (diag(p) - p p^T) dL/dp, dL/dx = W^T dL/dz."""
    lin = cast(nn.Linear, model[1])
    w, b = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()
    flat = x.reshape(len(x), -1).astype(np.float64)
    z = flat @ w.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    q = np.exp(p - p.max(1, keepdims=True))
    q /= q.sum(1, keepdims=True)
    q[np.arange(len(y)), y] -= 1.0
    dz = p * q - p * (p * q).sum(1, keepdims=True)  # (diag(p) - p p^T) q, row by row
    grad = dz @ w
    return np.clip(flat + eps * np.sign(grad), 0.0, 1.0).reshape(x.shape)


def test_double_softmax_fgsm_matches_hand_computed_gradient():
    model = linear_model(3)
    x, y = data(60, seed=4)
    got = fgsm(model, x, y, eps=0.05, batch_size=500, double_softmax=True).numpy()
    want = double_softmax_step(model, x.numpy(), y.numpy(), 0.05)
    np.testing.assert_allclose(got, want, atol=1e-6)
    # and it is not the ordinary step: the second softmax changes some signs
    assert not np.allclose(got, reference_step(model, x.numpy(), y.numpy(), 0.05))


def test_skorch_split_keeps_80_percent_stratified():
    from sklearn.model_selection import StratifiedKFold

    from neurocorr_paper.attack import skorch_train_indices

    y = torch.from_numpy(np.repeat(np.arange(5), 20))
    idx = skorch_train_indices(y)
    assert len(idx) == 80 and np.bincount(y.numpy()[idx]).tolist() == [16] * 5
    first = next(iter(StratifiedKFold(5).split(np.zeros(100), y.numpy())))[0]
    assert np.array_equal(idx, first)  # deterministic: no shuffling, as skorch's ValidSplit(5)


def test_paper_attack_is_one_surrogate_trained_further_each_round():
    from neurocorr_paper.attack import paper_attack, skorch_fit

    x, y = data(50, seed=2)
    built: list[nn.Module] = []

    def build() -> nn.Module:
        built.append(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)))
        return built[-1]

    rounds: list[int] = []
    got = paper_attack(x, y, build=build, rounds=3, eps=0.02, epochs=2, lr=0.05, batch_size=8, step=7, seed=11,
                       on_round=rounds.append)
    assert len(built) == 1 and rounds == [0, 1, 2]  # one surrogate for all rounds
    # by hand: the same seeded start, fit (continued) then double-softmax FGSM, three times
    torch.manual_seed(11)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    want = x.clone()
    for _ in range(3):
        skorch_fit(model, want, y, epochs=2, lr=0.05, batch_size=8)
        want = torch.from_numpy(double_softmax_step(model, want.numpy(), y.numpy(), 0.02).astype(np.float32))
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)
    for a, b in zip(built[0].parameters(), model.parameters(), strict=True):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-5)


def test_paper_cnn_is_demo_cnn_with_fc1_dropout():
    from neurocorr_paper.trainers import PaperCNN
    from neurocorr_torch.demo import CNN

    torch.manual_seed(0)
    paper = PaperCNN(side=28, padding=0)
    torch.manual_seed(0)
    demo = CNN(side=28, padding=0)
    assert all(torch.equal(a, b) for a, b in zip(paper.parameters(), demo.parameters(), strict=True))
    assert [type(m).__name__ for m in paper.head] == ["Flatten", "Linear", "Dropout", "ReLU", "Linear"]
    x = torch.rand(4, 1, 28, 28)
    paper.eval()
    demo.eval()
    assert torch.equal(paper(x), demo(x))  # dropout is off in eval mode
