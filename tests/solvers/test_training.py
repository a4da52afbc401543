"""solvers.training and solvers.callbacks: the Trainer against hand-written loops, callbacks."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from solvers.callbacks import (  # noqa: E402
    Checkpoint,
    EarlyStopping,
    Evaluate,
    LambdaCallback,
    LossSum,
    LossWindow,
    StepHooks,
    TracIn,
)
from solvers.training import (  # noqa: E402
    Callback,
    Trainer,
    local_batch,
    shard_bounds,
)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g, dtype=torch.float64)
    y = torch.sin(x @ torch.randn(5, 2, generator=g, dtype=torch.float64))
    return x, y


def _model(seed=1, dropout=0.0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 12), torch.nn.Dropout(dropout), torch.nn.Tanh(), torch.nn.Linear(12, 2)
    ).double()


def _mse(net, batch):
    x, y = batch
    return torch.mean((net(x) - y) ** 2)


def _epoch_batches(x, y, size, seed):
    def batches(epoch):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed + epoch))
        return [(x[order[i : i + size]], y[order[i : i + size]]) for i in range(0, len(x), size)]

    return batches


def _assert_same_state(a, b):
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


# ------------------------------------------------------------------ against hand-written loops


def test_epochs_with_a_per_epoch_scheduler_match_a_hand_written_loop_bitwise():
    x, y = _data()
    batches = _epoch_batches(x, y, 8, seed=3)

    # the hand-written loop (dropout: the RNG draws and train/eval switching must match)
    ref = _model(dropout=0.3)
    opt = torch.optim.Adam(ref.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)
    torch.manual_seed(7)
    sums, evals = [], []
    for epoch in range(1, 5):
        ref.train()
        total = 0.0
        for batch in batches(epoch):
            value = _mse(ref, batch)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            total += float(value.detach()) * len(batch[0])
        sched.step()
        sums.append(total / len(x))
        ref.eval()
        with torch.no_grad():
            evals.append(float(_mse(ref, (x, y))))
        ref.train()

    model = _model(dropout=0.3)
    opt2 = torch.optim.Adam(model.parameters(), lr=1e-2)
    total = LossSum(lambda batch, loss, extra: float(loss) * len(batch[0]))
    losses = []
    evaluation = Evaluate(lambda m: {"mse": float(_mse(m, (x, y)))})
    trainer = Trainer(
        model,
        opt2,
        _mse,
        scheduler=torch.optim.lr_scheduler.StepLR(opt2, 2, 0.5),
        callbacks=[total, LambdaCallback(on_epoch_end=lambda t: losses.append(total.total / 40))],
    )
    trainer.callbacks.append(evaluation)
    torch.manual_seed(7)
    trainer.fit(batches, epochs=4)
    assert losses == sums and evaluation.history["mse"] == evals
    assert evaluation.points == [1, 2, 3, 4] and (trainer.epoch, trainer.step) == (4, 20)
    _assert_same_state(model, ref)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == 2.5e-3


def test_steps_with_a_per_step_scheduler_and_evaluations_match_fit_style_loop():
    x, y = _data()

    def batch(step):
        idx = np.random.default_rng([5, step]).choice(len(x), 6, replace=False)
        return x[idx], y[idx]

    schedule = lambda s: 0.5 ** (s // 3)  # noqa: E731
    ref = _model()
    opt = torch.optim.SGD(ref.parameters(), lr=0.2, momentum=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    window, steps_seen, evals, means = [], [], [], []

    def record(step):
        ref.eval()
        with torch.no_grad():
            evals.append(float(_mse(ref, (x, y))))
        ref.train()
        steps_seen.append(step)
        means.append(sum(window) / len(window) if window else math.nan)
        window.clear()

    record(0)
    for step in range(10):
        value = _mse(ref, batch(step))
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        sched.step()
        window.append(float(value.detach()))
        if (step + 1) % 4 == 0 or step + 1 == 10:
            record(step + 1)

    model = _model()
    opt2 = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.5)
    evaluation = Evaluate(
        lambda m: {"mse": float(_mse(m, (x, y)))},
        every=4,
        unit="step",
        at_start=True,
        track_loss=True,
    )
    trainer = Trainer(
        model,
        opt2,
        _mse,
        scheduler=torch.optim.lr_scheduler.LambdaLR(opt2, schedule),
        scheduler_interval="step",
        callbacks=[evaluation],
    )
    trainer.fit(lambda epoch: (batch(s) for s in range(10)))
    assert evaluation.points == steps_seen == [0, 4, 8, 10]
    assert evaluation.history["mse"] == evals
    assert math.isnan(evaluation.train_loss[0])
    assert evaluation.train_loss[1:] == means[1:]
    _assert_same_state(model, ref)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == 0.2 * 0.5**3


# ------------------------------------------------------------------ hooks and callbacks


class Recorder(Callback):
    """Logs (hook, epoch, step, batch, lr) at every hook."""

    def __init__(self, log):
        self.log = log

    def _note(self, name, trainer):
        lr = trainer.optimizer.param_groups[0]["lr"]
        self.log.append((name, trainer.epoch, trainer.step, trainer.batch, lr))

    def on_fit_start(self, trainer):
        self._note("on_fit_start", trainer)

    def on_epoch_start(self, trainer):
        self._note("on_epoch_start", trainer)

    def before_step(self, trainer, batch, closure):
        self._note("before_step", trainer)

    def after_step(self, trainer, batch, loss, extra):
        self._note("after_step", trainer)

    def on_epoch_end(self, trainer):
        self._note("on_epoch_end", trainer)

    def on_fit_end(self, trainer):
        self._note("on_fit_end", trainer)


def test_callbacks_run_in_order_around_each_update_and_the_per_epoch_scheduler():
    x, y = _data(8)
    log = []
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    trainer = Trainer(
        model,
        opt,
        _mse,
        scheduler=torch.optim.lr_scheduler.StepLR(opt, 1, 0.5),
        callbacks=[Recorder(log)],
    )
    trainer.fit([(x[:4], y[:4]), (x[4:], y[4:])], epochs=2)
    assert log == [
        ("on_fit_start", 0, 0, 0, 1.0),
        ("on_epoch_start", 1, 0, 0, 1.0),
        ("before_step", 1, 0, 0, 1.0),
        ("after_step", 1, 1, 0, 1.0),
        ("before_step", 1, 1, 1, 1.0),
        ("after_step", 1, 2, 1, 1.0),
        ("on_epoch_end", 1, 2, 2, 0.5),  # the scheduler stepped before the epoch's end
        ("on_epoch_start", 2, 2, 0, 0.5),
        ("before_step", 2, 2, 0, 0.5),
        ("after_step", 2, 3, 0, 0.5),
        ("before_step", 2, 3, 1, 0.5),
        ("after_step", 2, 4, 1, 0.5),
        ("on_epoch_end", 2, 4, 2, 0.25),
        ("on_fit_end", 2, 4, 2, 0.25),
    ]
    assert trainer.finished


def test_scheduler_per_step_versus_per_epoch():
    x, y = _data(12)
    batches = [(x[i : i + 4], y[i : i + 4]) for i in (0, 4, 8)]
    seen = {}
    for interval in ("step", "epoch"):
        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        lrs = seen.setdefault(interval, [])

        def note(trainer, batch, closure, lrs=lrs):
            lrs.append(trainer.optimizer.param_groups[0]["lr"])

        trainer = Trainer(
            model,
            opt,
            _mse,
            scheduler=torch.optim.lr_scheduler.StepLR(opt, 1, 0.5),
            scheduler_interval=interval,
            callbacks=[LambdaCallback(before_step=note)],
        )
        trainer.fit(batches, epochs=2)
    assert seen["step"] == [0.5**k for k in range(6)]
    assert seen["epoch"] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5]


def test_step_hooks_fire_at_the_chosen_steps_with_that_steps_batch():
    x, y = _data()
    model = _model()
    calls = []

    def hook(step, closure):
        calls.append((step, float(closure().detach())))

    def batch(step):
        return x[step : step + 5], y[step : step + 5]

    losses = LossWindow()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.0),  # the weights stay: losses comparable
        _mse,
        callbacks=[StepHooks(hook, {0, 3, 7, 99}), losses],
    )
    trainer.fit(lambda epoch: (batch(s) for s in range(9)))
    assert [s for s, _ in calls] == [0, 3, 7]
    assert [v for _, v in calls] == [losses.values[s] for s in (0, 3, 7)]


def test_non_finite_loss_raises_before_the_update_naming_epoch_and_step():
    x, y = _data(8)
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def loss(net, batch):
        value = _mse(net, batch)
        return value * math.nan if trainer.step == 3 else value * 0.0

    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss)
    with pytest.raises(FloatingPointError, match=r"epoch 2, batch 1 \(step 3\).*epoch is 1"):
        trainer.fit([(x[:4], y[:4]), (x[4:], y[4:])], epochs=3)
    assert trainer.step == 3
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # zero losses so far: SGD left the weights


def test_non_finite_loss_names_the_last_checkpoint():
    x, y = _data(8)
    saved = []

    def run(model, nan_at, resume=None, every=1):
        def loss(net, batch):
            return _mse(net, batch) * (math.nan if trainer.step == nan_at else 1.0)

        trainer = Trainer(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            loss,
            callbacks=[Checkpoint(lambda a, t: saved.append((a, t)), every=every)],
        )
        trainer.load_state(resume)
        trainer.fit([(x, y)], epochs=9)

    with pytest.raises(FloatingPointError, match=r"epoch 4.*last checkpoint \(after epoch 3\)"):
        run(_model(), nan_at=3)
    with pytest.raises(FloatingPointError, match=r"epoch 5.*last checkpoint \(after epoch 2\)"):
        run(_model(), nan_at=4, resume=saved[1], every=5)  # loaded after epoch 2, none since
    with pytest.raises(FloatingPointError, match="no checkpoint was written"):
        run(_model(), nan_at=0)


def test_loss_sum_terms_and_extra_values():
    x, y = _data(10)
    model = _model()
    sums = []

    def loss(net, batch):
        per_sample = ((net(batch[0]) - batch[1]) ** 2).mean(dim=1)
        return per_sample.mean(), per_sample

    total = LossSum(
        lambda batch, value, extra: extra.detach().sum(),
        zero=lambda: torch.zeros((), dtype=torch.float64),
    )
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.0),
        loss,
        callbacks=[total, LambdaCallback(on_epoch_end=lambda t: sums.append(float(total.total)))],
    )
    trainer.fit([(x[:6], y[:6]), (x[6:], y[6:])], epochs=2)
    with torch.no_grad():
        expected = float(((model(x) - y) ** 2).mean(dim=1)[:6].sum()) + float(
            ((model(x) - y) ** 2).mean(dim=1)[6:].sum()
        )
    assert sums == [expected, expected]


# ------------------------------------------------------------------ early stopping, checkpoints


def _scripted(values):
    """An evaluation returning the next of ``values`` each time."""
    it = iter(values)
    return lambda m: {"score": next(it)}


def test_early_stopping_stops_after_patience_and_restores_the_best_state():
    x, y = _data()
    model = _model()
    states = {}
    marks = []

    def keep(trainer):
        states[trainer.epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    stopping = EarlyStopping("score", patience=2, on_improvement=lambda: marks.append(1))
    trainer = Trainer(
        model,
        torch.optim.Adam(model.parameters(), lr=1e-2),
        _mse,
        callbacks=[
            Evaluate(_scripted([3.0, 1.0, 2.0, 1.5, 0.1, 0.0])),
            stopping,
            LambdaCallback(on_epoch_end=keep),
        ],
    )
    trainer.fit([(x[:20], y[:20]), (x[20:], y[20:])], epochs=10)
    assert trainer.epoch == 4 and trainer.stop and trainer.finished
    assert (stopping.best_epoch, stopping.best_value, stopping.since) == (2, 1.0, 2)
    assert len(marks) == 2
    assert not torch.equal(states[4]["0.weight"], states[2]["0.weight"])
    for k, v in model.state_dict().items():
        assert torch.equal(v, states[2][k]), k


def test_max_epochs_leaves_the_last_weights_and_an_unfinished_fit():
    x, y = _data()
    model = _model()
    stopping = EarlyStopping("score", patience=0)
    trainer = Trainer(
        model,
        torch.optim.Adam(model.parameters(), lr=1e-2),
        _mse,
        callbacks=[Evaluate(_scripted([1.0, 2.0, 3.0])), stopping],
    )
    trainer.fit([(x, y)], epochs=5, max_epochs=3)
    assert trainer.epoch == 3 and not trainer.finished
    assert not torch.equal(model.state_dict()["0.weight"], stopping.best_state["0.weight"])


def _resumable(model, saved, x, y):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    evaluation = Evaluate(lambda m: {"mse": float(_mse(m, (x, y)))})
    tracin = TracIn(lambda m: ((m(x) - y) ** 2).sum(dim=1).detach(), len(x))
    stopping = EarlyStopping("mse", patience=50, on_improvement=tracin.mark_best)
    total = LossSum()
    trainer = Trainer(
        model,
        opt,
        _mse,
        scheduler=torch.optim.lr_scheduler.StepLR(opt, 2, 0.7),
        callbacks=[
            total,
            evaluation,
            tracin,
            stopping,
            Checkpoint(lambda arrays, attrs: saved.append((arrays, attrs))),
        ],
        checkpoint_format="test.v1",
    )
    return trainer, evaluation, tracin


def test_resume_after_a_stop_gives_the_uninterrupted_run_bitwise():
    x, y = _data()
    batches = _epoch_batches(x, y, 16, seed=11)
    full_saves, part_saves, tail_saves = [], [], []
    full = _model(seed=2, dropout=0.2)
    torch.manual_seed(0)
    t_full, e_full, i_full = _resumable(full, full_saves, x, y)
    t_full.fit(batches, epochs=6)

    part = _model(seed=2, dropout=0.2)
    torch.manual_seed(0)
    t_part, _, _ = _resumable(part, part_saves, x, y)
    t_part.fit(batches, epochs=6, max_epochs=3)
    arrays, attrs = part_saves[-1]
    assert (attrs["epoch"], attrs["step"], attrs["format"]) == (3, 9, "test.v1")
    assert set(arrays) == {"model", "optimizer", "scheduler", "best", "influence"}
    rng = torch.get_rng_state()

    other = _model(seed=99, dropout=0.2)  # weights come from the checkpoint
    t_tail, e_tail, i_tail = _resumable(other, tail_saves, x, y)
    assert t_tail.load_state((arrays, attrs))
    torch.set_rng_state(rng)  # dropout draws continue as in the uninterrupted run
    t_tail.fit(batches, epochs=6)
    assert (t_tail.epoch, t_tail.step) == (6, 18)
    assert e_tail.history["mse"] == e_full.history["mse"][3:]
    _assert_same_state(other, full)
    assert torch.equal(i_tail.accumulator.total, i_full.accumulator.total)
    assert i_tail.accumulator.best_epoch == i_full.accumulator.best_epoch
    a_full, a_tail = full_saves[-1], tail_saves[-1]
    assert a_full[1] == a_tail[1]
    for group in a_full[0]:
        for name, value in a_full[0][group].items():
            assert torch.equal(value, a_tail[0][group][name]), (group, name)


def test_load_state_rejects_other_formats_and_clashing_callbacks():
    x, y = _data()
    model = _model()
    saves = []
    trainer, _, _ = _resumable(model, saves, x, y)
    trainer.fit([(x, y)], epochs=1)
    arrays, attrs = saves[-1]
    other = Trainer(model, torch.optim.Adam(model.parameters()), _mse)
    with pytest.raises(ValueError, match=r"not a checkpoint of this trainer \(format tensorsim"):
        other.load_state((arrays, attrs))
    with pytest.raises(ValueError, match="scheduler state does not fit"):
        Trainer(
            model,
            torch.optim.Adam(model.parameters()),
            _mse,
            scheduler=torch.optim.lr_scheduler.StepLR(torch.optim.Adam(model.parameters()), 1),
            checkpoint_format="test.v1",
        ).load_state((arrays, {k: v for k, v in attrs.items() if k != "scheduler_layout"}))
    assert not other.load_state(None)
    twice = Trainer(
        model,
        torch.optim.Adam(model.parameters()),
        _mse,
        callbacks=[EarlyStopping("a", patience=0), EarlyStopping("b", patience=0)],
    )
    with pytest.raises(ValueError, match="reuses the names"):
        twice.state()


def test_tracin_adds_the_scores_of_every_epoch():
    x, y = _data(6)
    model = _model()
    scores = []

    def score(m):
        s = torch.arange(6, dtype=torch.float64) * (len(scores) + 1)
        scores.append(s)
        return s

    tracin = TracIn(score, 6)
    Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), _mse, callbacks=[tracin]).fit(
        [(x, y)], epochs=3
    )
    assert torch.equal(tracin.accumulator.total, scores[0] + scores[1] + scores[2])
    assert tracin.accumulator.epochs == 3


# ------------------------------------------------------------------ data parallel pieces


@pytest.mark.parametrize(("n", "world"), [(10, 3), (2, 4), (7, 1)])
def test_local_batches_cover_the_global_batch_once(n, world):
    indices = torch.arange(100, 100 + n)
    shards = [local_batch(indices, r, world) for r in range(world)]
    real = [mine for mine, scale in shards if scale]
    assert torch.equal(torch.cat(real), indices)
    assert all(scale in (0.0, world / n) for _, scale in shards)
    assert [shard_bounds(n, r, world) for r in range(world)][-1][1] == n


def test_bad_arguments():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="optimizer"):
        Trainer(model, "adam", _mse)
    with pytest.raises(TypeError, match="model"):
        Trainer(object(), opt, _mse)
    with pytest.raises(ValueError, match="scheduler_interval"):
        Trainer(model, opt, _mse, scheduler_interval="batch")
    with pytest.raises(ValueError, match="epochs"):
        Trainer(model, opt, _mse).fit([], epochs=-1)
    with pytest.raises(ValueError, match="every"):
        Evaluate(lambda m: {}, every=0)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping("x", patience=-1)
    with pytest.raises(TypeError, match="unknown hooks"):
        LambdaCallback(on_batch=print)
