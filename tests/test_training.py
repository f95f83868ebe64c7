"""CycleGAN: a 2-step CPU smoke test, and resume equivalence."""

from __future__ import annotations

import json

import pytest
import torch

from training.train_cyclegan import CycleGANConfig, CycleGANTrainer, ImagePool
from core.progress import TrainingCancelled

TINY = dict(image_size=32, ngf=8, ndf=8, n_blocks=1, batch_size=2, steps=2, decay_steps=1, anime_limit=32,
            mix={"quickdraw": 0.4, "synthetic": 0.4, "edges": 0.2}, log_every=1, sample_every=2,
            checkpoint_every=1, snapshot_every=1, eval_count=8, pool_size=3, seed=7)


def _params(trainer):
    return {f"{n}.{k}": v.detach().clone() for n in ("G_AB", "G_BA", "D_A", "D_B")
            for k, v in getattr(trainer, n).state_dict().items()}


def test_two_steps_train_and_write_everything(tmp_path, data_dir):
    torch.set_num_threads(2)
    config = CycleGANConfig(**TINY)
    trainer = CycleGANTrainer(config, tmp_path / "run", data_dir)
    before = _params(trainer)
    events = []
    metrics = trainer.run(events.append)
    after = _params(trainer)
    assert trainer.step == 2 and [e.step for e in events] == [1, 2]
    assert all(torch.isfinite(torch.tensor(list(e.losses.values()))).all() for e in events)
    assert set(events[-1].losses) == {"G", "G_gan", "cycle", "identity", "D_A", "D_B"}
    moved = [k for k in before if not torch.equal(before[k], after[k]) and before[k].is_floating_point()]
    assert any(k.startswith("G_AB") for k in moved) and any(k.startswith("D_B") for k in moved)
    assert events[-1].sample_path.is_file() and events[-1].checkpoint_path.is_file()
    assert events[-1].eta_s == 0 and 0 < events[0].eta_s
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["seed"] == 7
    assert len((run / "loss_log.jsonl").read_text().splitlines()) == 2
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == ["step_0000001.pt", "step_0000002.pt"]
    assert set(metrics) == {"holdout_cycle_l1", "output_diversity"}
    ckpt = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert ckpt["step"] == 2 and ckpt["format_version"] == 1 and "opt_G" in ckpt


def test_resume_takes_the_same_next_step(tmp_path, data_dir):
    torch.set_num_threads(1)
    config = CycleGANConfig(**{**TINY, "steps": 3, "decay_steps": 2})
    straight = CycleGANTrainer(config, tmp_path / "a", data_dir)
    straight.run()
    first = CycleGANTrainer(config, tmp_path / "b", data_dir)
    first.run(stop_at=2)
    resumed = CycleGANTrainer(config, tmp_path / "b", data_dir)
    assert resumed.load_checkpoint() and resumed.step == 2
    resumed.run()
    a, b = _params(straight), _params(resumed)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    # a different seed goes elsewhere: the comparison above can fail
    other = CycleGANTrainer(CycleGANConfig(**{**TINY, "steps": 3, "decay_steps": 2, "seed": 8}), tmp_path / "c", data_dir)
    other.run()
    assert any(not torch.allclose(a[k], v, atol=1e-6) for k, v in _params(other).items() if k.startswith("G_AB"))


def test_resume_refuses_a_different_config(tmp_path, data_dir):
    CycleGANTrainer(CycleGANConfig(**TINY), tmp_path, data_dir).run(stop_at=1)
    other = CycleGANTrainer(CycleGANConfig(**{**TINY, "ngf": 16}), tmp_path, data_dir)
    with pytest.raises(ValueError, match="ngf"):
        other.load_checkpoint()


def test_cancel_from_the_callback_saves_a_checkpoint(tmp_path, data_dir):
    config = CycleGANConfig(**{**TINY, "steps": 5, "checkpoint_every": 100, "sample_every": 100})
    trainer = CycleGANTrainer(config, tmp_path, data_dir)

    def cancel(p):
        if p.step == 2:
            raise TrainingCancelled

    with pytest.raises(TrainingCancelled):
        trainer.run(cancel)
    assert torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=True)["step"] == 2


def test_learning_rate_is_constant_then_decays_linearly():
    c = CycleGANConfig(steps=100, decay_steps=50, lr=2e-4)
    assert c.lr_at(0) == c.lr_at(49) == 2e-4
    assert c.lr_at(75) == pytest.approx(1e-4)
    assert c.lr_at(100) == 0
    with pytest.raises(ValueError):
        CycleGANConfig(steps=10, decay_steps=20)


def test_image_pool_mixes_history_and_is_bounded():
    import numpy as np

    pool = ImagePool(2)
    rng = np.random.default_rng(0)
    for i in range(20):
        out = pool.query(torch.full((1, 1, 2, 2), float(i)), rng)
        assert out.shape == (1, 1, 2, 2)
    assert len(pool.images) == 2
    assert ImagePool(0).query(torch.ones(1, 1), rng).sum() == 1


@pytest.mark.parametrize("options", [
    dict(optimizer="sgd", momentum=0.8, weight_decay=1e-4, lr_d=1e-4),
    dict(schedule="cyclic", cycle_steps=4, sharpness=1.0, fuzzy_labels=True, minibatch_discrimination=True),
], ids=["sgd-weight-decay-separate-lr", "cyclic-sharpness-fuzzy-minibatch"])
def test_paper_options_train(tmp_path, data_dir, options):
    """Each hyper-parameter the papers vary is used by the trainer: the optimiser kind, its
    learning rates per network, and the D architecture change; two steps stay finite and move."""
    torch.set_num_threads(2)
    config = CycleGANConfig(**{**TINY, "snapshot_every": 0}, **options)
    trainer = CycleGANTrainer(config, tmp_path / "run", data_dir)
    expect_opt = torch.optim.SGD if config.optimizer == "sgd" else torch.optim.Adam
    assert isinstance(trainer.opt_G, expect_opt) and isinstance(trainer.opt_D, expect_opt)
    assert trainer.opt_D.param_groups[0]["weight_decay"] == config.weight_decay
    assert (trainer.D_A.head is not None) == config.minibatch_discrimination
    before = _params(trainer)
    events = []
    trainer.run(events.append)
    assert all(torch.isfinite(torch.tensor(list(e.losses.values()))).all() for e in events)
    after = _params(trainer)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("D_A"))
    g_lr, d_lr = trainer.opt_G.param_groups[0]["lr"], trainer.opt_D.param_groups[0]["lr"]
    assert g_lr == pytest.approx(config.lr_at(1, config.lr))
    assert d_lr == pytest.approx(config.lr_at(1, config.lr_d or config.lr))


def test_cyclic_schedule_shape():
    c = CycleGANConfig(lr=1e-3, schedule="cyclic", cycle_steps=100, steps=1000, decay_steps=0)
    assert c.lr_at(0) == pytest.approx(1e-4)      # each cycle starts at 10 %
    assert c.lr_at(50) == pytest.approx(1e-3)     # peaks half way
    assert c.lr_at(100) == pytest.approx(1e-4)    # and starts again
    assert c.lr_at(25) == pytest.approx(c.lr_at(75))


def test_a_run_can_be_lengthened_when_its_past_is_unchanged(tmp_path, data_dir):
    """steps 3 / decay 1 and steps 4 / decay 2 give the same rate to steps 0 and 1, so a run
    stopped at step 2 under the first may go on under the second, and ends where a straight run
    of the second does; a change that alters a past step's rate is refused."""
    torch.set_num_threads(1)
    short = CycleGANConfig(**{**TINY, "steps": 3, "decay_steps": 1})
    long = CycleGANConfig(**{**TINY, "steps": 4, "decay_steps": 2})
    straight = CycleGANTrainer(long, tmp_path / "a", data_dir)
    straight.run()
    CycleGANTrainer(short, tmp_path / "b", data_dir).run(stop_at=2)
    (tmp_path / "b" / "loss_log.jsonl").open("a").write('{"step": 3, "G": 0}\n')  # a lost step's line
    resumed = CycleGANTrainer(long, tmp_path / "b", data_dir)
    resumed.run()
    a, b = _params(straight), _params(resumed)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "loss_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    changed_past = CycleGANConfig(**{**TINY, "steps": 4, "decay_steps": 4})  # decays from step 0
    with pytest.raises(ValueError, match="decay_steps"):
        CycleGANTrainer(changed_past, tmp_path / "b", data_dir).load_checkpoint()
