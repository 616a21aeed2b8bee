"""Checkpoints that never lie: a run killed at any moment leaves files that load and agree, resumes
to the same numbers as a run never stopped, and leaves no temporary file; a diverging run never
writes a non-finite checkpoint; the run folder is never a user's own folder; SIGTERM saves.

The kill tests run tests/kill_driver.py in a real subprocess that SIGKILLs itself just before or
just after each file rename of a 4-epoch run (every point between two writes), and then 50 kills
at random moments of one run resumed again and again.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import tinyresnet.training.loop as loop
from tinyresnet import nn
from tinyresnet.serialization import load_weights
from tinyresnet.training import TrainingDiverged, fit, load_checkpoint
from tinyresnet.training.run import prepare_run_folder, reconcile_best

DRIVER = Path(__file__).with_name("kill_driver.py")
sys.path.insert(0, str(DRIVER.parent))
import kill_driver  # noqa: E402


def drive(run_dir, *args, timeout=120):
    """Run the driver; returns its CompletedProcess (returncode −9 when it killed itself)."""
    return subprocess.run([sys.executable, str(DRIVER), str(run_dir), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONHASHSEED": "0"})


def history(run_dir):
    return load_checkpoint(os.path.join(run_dir, "last.npz"))["meta"]["state"]["history"]


def assert_folder_loads_and_may_only_be_one_write_behind(run_dir):
    """Right after a kill: every checkpoint there loads, and best.npz is what last.npz names, or the
    next epoch (killed between writing best.npz and last.npz: resume repairs that)."""
    names = os.listdir(run_dir) if os.path.isdir(run_dir) else []
    for name in names:
        if name.endswith(".npz") and not name.startswith(".tmp-"):
            load_checkpoint(os.path.join(run_dir, name))          # raises if unloadable
    if "best.npz" in names and "last.npz" in names:
        last = load_checkpoint(os.path.join(run_dir, "last.npz"))["meta"]["state"]
        best = load_checkpoint(os.path.join(run_dir, "best.npz"))["meta"]["state"]
        assert best["epoch"] in (last["best_epoch"], last["epoch"] + 1), (best["epoch"], last)
    if "best.npz" in names and "last.npz" not in names:
        assert load_checkpoint(os.path.join(run_dir, "best.npz"))["meta"]["state"]["epoch"] == 1


def assert_finished_run_is_sound(run_dir, want_history):
    names = os.listdir(run_dir)
    assert not [n for n in names if n.startswith(".tmp-")], names
    last = load_checkpoint(os.path.join(run_dir, "last.npz"))["meta"]["state"]
    best = load_checkpoint(os.path.join(run_dir, "best.npz"))["meta"]["state"]
    assert best["epoch"] == last["best_epoch"] and best["best_accuracy"] == last["best_accuracy"]
    assert [row["test_acc"] for row in last["history"]] == [row["test_acc"] for row in want_history]
    assert [row["train_loss"] for row in last["history"]] == [row["train_loss"] for row in want_history]
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        assert len(f.read().strip().splitlines()) == 1 + len(want_history)


@pytest.fixture
def resume(monkeypatch):
    """Resume (or start) the driver's run in this process: the same tiny net and config."""
    monkeypatch.setattr(loop, "build_model", kill_driver.tiny_net)
    monkeypatch.setattr(loop, "plot_curves", kill_driver.plot_curves_as_text)

    def run(run_dir, epochs=4):
        started = os.path.exists(run_dir / "last.npz") or os.path.exists(run_dir / "best.npz")
        return fit(kill_driver.config(str(run_dir), epochs), resume=started)
    return run


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The run never stopped: its history, how many renames it makes, and how long it takes."""
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    started = time.perf_counter()
    done = drive(run_dir)
    assert done.returncode == 0, done.stderr
    return history(run_dir), int(done.stdout.split()[-1]), time.perf_counter() - started


def test_a_kill_before_or_after_any_write_resumes_to_the_same_run_with_no_temporary_file(straight, resume,
                                                                                         tmp_path):
    want, renames, _ = straight
    assert renames >= 9          # config.json, metrics.csv, 4 × (last.npz, or best.npz and its copy), curves.png
    for k in range(1, renames + 1):
        for when in ("before", "after"):
            run_dir = tmp_path / f"kill-{k}-{when}"
            killed = drive(run_dir, "--kill-at", str(k), "--when", when)
            assert killed.returncode == -signal.SIGKILL, killed.stderr
            assert_folder_loads_and_may_only_be_one_write_behind(run_dir)
            try:
                resume(run_dir)
            except ValueError as e:                 # killed at the last rename (curves.png): nothing left to train
                assert "already trained 4 epochs" in str(e) and k >= renames - 1, (k, when, e)
            assert_finished_run_is_sound(run_dir, want)


def kill_at_random_moments(run_dir, kills, seed, seconds, want):
    """One run killed ``kills`` times at random moments and resumed each time; when it completes
    (which the kills allow now and then), it is checked and starts over. After the last kill it is resumed
    to the end and checked once more (so a machine slower than when ``seconds`` was measured, where every
    attempt may be killed, still ends with a checked run). Returns the completions, that last one included."""
    rng, completed = random.Random(seed), 0
    while kills:
        started = os.path.exists(run_dir / "last.npz") or os.path.exists(run_dir / "best.npz")
        process = subprocess.Popen([sys.executable, str(DRIVER), str(run_dir), *(["--resume"] if started else [])],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.1, 1.2) * seconds)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills -= 1
        returncode, errors = process.wait(timeout=60), process.stderr.read()
        if returncode == 0 or (returncode == 1 and "already trained 4 epochs" in errors):
            assert_finished_run_is_sound(run_dir, want)
            completed += 1
            shutil.rmtree(run_dir)
        else:
            assert returncode == -signal.SIGKILL, errors
            assert_folder_loads_and_may_only_be_one_write_behind(run_dir)
    started = os.path.exists(run_dir / "last.npz") or os.path.exists(run_dir / "best.npz")
    last = subprocess.run([sys.executable, str(DRIVER), str(run_dir), *(["--resume"] if started else [])],
                          capture_output=True, text=True, timeout=300)
    assert last.returncode == 0 or "already trained 4 epochs" in last.stderr, last.stderr
    assert_finished_run_is_sound(run_dir, want)
    return completed + 1


def test_fifty_kills_at_random_moments_never_leave_a_stale_or_unloadable_file(straight, tmp_path):
    """Two runs side by side (the machine has two cores), 25 random kills each."""
    want, _, seconds = straight
    with ThreadPoolExecutor(2) as pool:
        chains = [pool.submit(kill_at_random_moments, tmp_path / f"run-{i}", 25, i, seconds, want) for i in (0, 1)]
        completed = [chain.result() for chain in chains]     # each chain checked its folder after every kill
    print(f"completed runs per chain (the final resume included): {completed}")   # and every finished run


# ------------------------------------------------------------------------------ the order of writes
def test_a_best_epoch_writes_best_npz_before_last_npz(resume, tmp_path, monkeypatch):
    written, real = [], loop.copy_atomically

    def spy_save(self, path, interrupted=False):
        written.append(os.path.basename(path))
        return real_save(self, path, interrupted)
    real_save = loop.Trainer.save
    monkeypatch.setattr(loop.Trainer, "save", spy_save)
    monkeypatch.setattr(loop, "copy_atomically", lambda src, dst: (written.append(
        f"{os.path.basename(src)}->{os.path.basename(dst)}"), real(src, dst)))
    result = resume(tmp_path / "run", epochs=2)
    assert result.best_epoch >= 1
    assert written[:2] == ["best.npz", "best.npz->last.npz"]             # epoch 1 is always the best so far


def reconcile(run_dir):
    """``reconcile_best`` on the run's last.npz: the checkpoint to resume from, and the notes."""
    notes = []
    return reconcile_best(str(run_dir), load_checkpoint(run_dir / "last.npz"), notes), notes


def test_resume_repairs_a_best_npz_one_epoch_ahead_of_last_npz(resume, tmp_path):
    """The state a kill between the two writes of a best epoch leaves: resume continues from best.npz."""
    run_dir = tmp_path / "run"
    resume(run_dir, epochs=2)
    epoch_2 = (run_dir / "last.npz").read_bytes()
    resume(run_dir, epochs=3)
    (run_dir / "best.npz").write_bytes((run_dir / "last.npz").read_bytes())   # epoch 3 written as best.npz,
    (run_dir / "last.npz").write_bytes(epoch_2)                               # killed before its copy
    checkpoint, notes = reconcile(run_dir)
    assert checkpoint["meta"]["state"]["epoch"] == 3 and "newer" in notes[0]
    assert (run_dir / "last.npz").read_bytes() == (run_dir / "best.npz").read_bytes()


def test_resume_restores_last_npz_from_best_npz_and_best_npz_from_last_npz(resume, tmp_path, capsys):
    run_dir = tmp_path / "run"
    resume(run_dir, epochs=1)                          # epoch 1 is always the best so far
    assert (run_dir / "last.npz").read_bytes() == (run_dir / "best.npz").read_bytes()
    os.remove(run_dir / "best.npz")                    # a lost best.npz of the epoch last.npz holds
    _, notes = reconcile(run_dir)
    assert "restored it from" in notes[0]
    assert (run_dir / "best.npz").read_bytes() == (run_dir / "last.npz").read_bytes()
    os.remove(run_dir / "last.npz")                    # as if killed before the copy, in the first epoch
    result = resume(run_dir, epochs=2)
    assert len(result.history) == 2 and "restored it from" in capsys.readouterr().err


def test_a_stale_best_npz_is_reported_and_the_record_follows_it(resume, tmp_path):
    import json

    from tinyresnet.serialization import load_npz, save_npz

    run_dir = tmp_path / "run"
    resume(run_dir, epochs=2)
    arrays = load_npz(run_dir / "last.npz")
    meta = json.loads(str(arrays["meta"]))
    meta["state"]["best_epoch"] = 7                    # last.npz names an epoch best.npz does not hold
    arrays["meta"] = np.array(json.dumps(meta))
    save_npz(run_dir / "last.npz", arrays)
    held = load_checkpoint(run_dir / "best.npz")["meta"]["state"]["epoch"]
    checkpoint, notes = reconcile(run_dir)
    assert checkpoint["meta"]["state"]["best_epoch"] == held and f"holds epoch {held}" in notes[0]


# ------------------------------------------------------------------------------ temporary files
def test_starting_and_resuming_remove_the_temporary_files_a_killed_save_left(resume, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    leftovers = [".tmp-0123456789abcdef-last.npz", ".tmp-fedcba9876543210-curves.png"]
    for name in leftovers + [".tmp-mine.txt", "notes.txt"]:              # not ours: kept
        (run_dir / name).write_bytes(b"x" * 100)
    resume(run_dir, epochs=1)
    assert sorted(os.listdir(run_dir)) == sorted(["config.json", "metrics.csv", "last.npz", "best.npz",
                                                  "curves.png", ".tmp-mine.txt", "notes.txt"])
    assert "removed 2 temporary file(s)" in capsys.readouterr().err
    (run_dir / leftovers[0]).write_bytes(b"x")
    resume(run_dir, epochs=2)
    assert leftovers[0] not in os.listdir(run_dir)


# ------------------------------------------------------------------------------ the run folder
def test_a_new_run_refuses_a_folder_whose_files_it_would_overwrite(resume, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"my": "settings"}')
    (mine / "metrics.csv").write_text("my,numbers\n")
    with pytest.raises(FileExistsError, match=r"not a tinyresnet run folder.*config\.json, metrics\.csv"):
        resume(mine, epochs=1)
    assert (mine / "config.json").read_text() == '{"my": "settings"}'       # untouched
    other = tmp_path / "other"
    other.mkdir()
    (other / "photo.jpg").write_bytes(b"x")                                 # no name a run writes: fine
    resume(other, epochs=1)
    assert (other / "photo.jpg").read_bytes() == b"x"


def test_a_run_killed_before_its_first_checkpoint_can_start_again_in_its_folder(resume, tmp_path):
    run_dir = tmp_path / "run"
    prepare = kill_driver.config(str(run_dir), 1)
    prepare_run_folder(prepare)
    from tinyresnet.training.run import write_config
    write_config(str(run_dir), prepare)                # config.json of a run that saved nothing yet
    (run_dir / "metrics.csv").write_text("epoch\n")
    resume(run_dir, epochs=1)
    assert os.path.exists(run_dir / "last.npz")


def test_out_that_is_a_file_and_a_folder_that_cannot_be_written_fail_in_one_line(tmp_path, monkeypatch, capsys):
    from tinyresnet.cli import main

    monkeypatch.setattr(loop, "build_model", kill_driver.tiny_net)
    a_file = tmp_path / "results.txt"
    a_file.write_text("mine")
    args = ["train", "--dataset", "synthetic", "--epochs", "1", "--quiet", "--subset", "64"]
    assert main([*args, "--out", str(a_file)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file, not a folder" in err and str(a_file) in err
    assert a_file.read_text() == "mine"

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "ro"))
    monkeypatch.setattr("tempfile.TemporaryFile", refuse)
    assert main([*args, "--out", str(tmp_path / "ro")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write in the run folder" in err and "writable --out" in err


def test_a_full_disk_gives_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    import errno

    from tinyresnet.cli import main

    monkeypatch.setattr(loop, "build_model", kill_driver.tiny_net)
    out = tmp_path / "run"
    args = ["train", "--dataset", "synthetic", "--quiet", "--subset", "64", "--out", str(out)]
    assert main([*args, "--epochs", "1"]) == 0
    before = (out / "last.npz").read_bytes()
    real = np.savez

    def full(f, **arrays):
        real(f, **arrays)
        raise OSError(errno.ENOSPC, "No space left on device", getattr(f, "name", "?"))
    monkeypatch.setattr(np, "savez", full)
    assert main([*args, "--epochs", "2", "--resume"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "free some space" in err
    assert (out / "last.npz").read_bytes() == before
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-")]


# ------------------------------------------------------------------------------ SIGTERM
def test_sigterm_mid_epoch_saves_like_ctrl_c_and_resume_is_exact(resume, tmp_path, monkeypatch):
    straight = resume(tmp_path / "straight", epochs=2)

    def terminate(epoch, step, loss):
        if (epoch, step) == (1, 1):
            os.kill(os.getpid(), signal.SIGTERM)             # what kill, schedulers and docker stop send
    monkeypatch.setattr(loop, "build_model", kill_driver.tiny_net)
    stopped = fit(kill_driver.config(str(tmp_path / "split"), 2), on_step=terminate)
    assert stopped.interrupted and stopped.stop_signal == signal.SIGTERM     # the CLI exits 128 + 15
    assert load_checkpoint(tmp_path / "split" / "last.npz")["meta"]["state"]["step"] == 2
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL           # put back
    resumed = resume(tmp_path / "split", epochs=2)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]


# ------------------------------------------------------------------------------ divergence
@pytest.mark.parametrize("lr", [50.0, 200.0, 1e6])
def test_a_diverging_run_stops_naming_the_step_and_never_writes_a_non_finite_checkpoint(lr, tmp_path,
                                                                                      monkeypatch):
    monkeypatch.setattr(loop, "build_model", kill_driver.tiny_net)
    config = kill_driver.config(str(tmp_path / "run"), 6)
    config.lr = lr
    with pytest.raises(TrainingDiverged) as err:
        fit(config)
    message = str(err.value)
    assert "epoch" in message and "lower learning rate" in message
    assert ("no longer finite" in message or "still finite" in message or "test loss" in message), message
    assert ". The last checkpoint" in message or ". No checkpoint" in message
    for name in ("last.npz", "best.npz"):
        if os.path.exists(tmp_path / "run" / name):
            saved = load_checkpoint(tmp_path / "run" / name)
            assert all(np.isfinite(v).all() for v in saved["model"].values()), name
            assert all(np.abs(v).max() < 1e12 for v in saved["model"].values() if v.size), name


def test_an_epoch_whose_test_loss_is_not_finite_is_never_saved_nor_called_best(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "build_model", kill_driver.tiny_net)
    real = loop.evaluate
    monkeypatch.setattr(loop, "evaluate", lambda model, loader: {**real(model, loader), "loss": float("nan")}
                        if loop_state["epoch"] == 1 else real(model, loader))
    loop_state = {"epoch": 0}
    trainer = loop.Trainer(kill_driver.config(str(tmp_path / "run"), 3))
    real_end = trainer.end_epoch

    def end_epoch(epoch, lr):
        loop_state["epoch"] = epoch
        return real_end(epoch, lr)
    trainer.end_epoch = end_epoch
    with pytest.raises(TrainingDiverged, match=r"test loss became nan at the end of epoch 2.*epoch 1\), is finite"):
        trainer.fit()
    for name in ("last.npz", "best.npz"):
        assert load_checkpoint(tmp_path / "run" / name)["meta"]["state"]["epoch"] == 1


def test_the_message_names_the_first_non_finite_tensor(resume, tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "build_model", kill_driver.tiny_net)
    trainer = loop.Trainer(kill_driver.config(str(tmp_path / "run"), 2))

    def poison(epoch, step, loss):
        if (epoch, step) == (1, 0):
            trainer.model[1].running_var[0] = np.inf          # batch norm's statistic, not a weight
    with pytest.raises(TrainingDiverged, match=r"1\.running_var is no longer finite at epoch 2, step 2"):
        trainer.fit(on_step=poison)
    assert load_checkpoint(tmp_path / "run" / "last.npz")["meta"]["state"]["epoch"] == 1
    with pytest.raises(TrainingDiverged, match="not saving"):
        trainer.save(str(tmp_path / "run" / "other.npz"))
    assert not os.path.exists(tmp_path / "run" / "other.npz")


# ------------------------------------------------------------------------------ loading from Python
def test_a_cli_checkpoint_loads_into_a_model_in_one_call(resume, tmp_path):
    run_dir = tmp_path / "run"
    resume(run_dir, epochs=1)
    saved = load_checkpoint(run_dir / "best.npz")["model"]
    model = kill_driver.tiny_net(kill_driver.config(str(run_dir), 1), 10, 1)
    model.load(run_dir / "best.npz")                                   # strict: every key fits
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, saved[key], err_msg=key)
    assert set(load_weights(run_dir / "best.npz")) == set(saved)


def test_strict_false_never_loads_nothing_in_silence_and_prefixes_are_named(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    state = model.state_dict()
    with pytest.raises(RuntimeError, match="strict=False would load nothing"):
        model.load_state_dict({"encoder.weight": np.zeros(3)}, strict=False)
    wrapped = {f"module.{k}": v for k, v in state.items()}
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=r"starts with 'module\.'.*DataParallel.*removeprefix"):
            model.load_state_dict(wrapped, strict=strict)
    assert model.load_state_dict({"0.weight": state["0.weight"]}, strict=False).missing_keys  # some: fine


def test_a_long_size_mismatch_list_is_shortened():
    big = nn.Sequential(*[nn.Linear(4, 4) for _ in range(20)])
    small = nn.Sequential(*[nn.Linear(3, 3) for _ in range(20)])
    with pytest.raises(RuntimeError) as err:
        big.load_state_dict(small.state_dict())
    message = str(err.value)
    assert "size mismatch (40)" in message and "and 35 more" in message and len(message) < 1200


def test_a_checkpoint_without_its_metadata_fails_naming_what_it_lacks(resume, tmp_path):
    import json

    from tinyresnet.serialization import load_npz, save_npz

    run_dir = tmp_path / "run"
    resume(run_dir, epochs=1)
    arrays = load_npz(run_dir / "last.npz")
    meta = json.loads(str(arrays["meta"]))
    del meta["model_info"]
    arrays["meta"] = np.array(json.dumps(meta))
    save_npz(tmp_path / "damaged.npz", arrays)
    with pytest.raises(ValueError, match=r"lacks model_info.*model\.load"):
        load_checkpoint(tmp_path / "damaged.npz")
    model = kill_driver.tiny_net(kill_driver.config(str(run_dir), 1), 10, 1)
    model.load(tmp_path / "damaged.npz")                                 # the weights still load
