"""tinyresnet.course: predictions, exercises and quick mode, graded by the engine."""

import pytest

from tinyresnet import course


@pytest.fixture(autouse=True)
def fresh():
    course.reset()
    yield
    course.reset()


def test_numeric_predictions_are_graded_with_their_tolerance(capsys):
    course.predict("t.abs", 2.0, tolerance=0.25)
    assert course.check_prediction("t.abs", 2.2).correct is True
    course.predict("t.abs", 2.0, tolerance=0.25)
    assert course.check_prediction("t.abs", 2.3).correct is False
    course.predict("t.rel", 100, rel_tolerance=0.1)
    assert course.check_prediction("t.rel", 109.0).correct and not course.check_prediction("t.rel", 112.0).correct
    course.predict("t.factor", 10, factor=3)
    assert course.check_prediction("t.factor", 29.0).correct and not course.check_prediction("t.factor", 31.0).correct
    assert course.check_prediction("t.factor", 3.4).correct and not course.check_prediction("t.factor", 3.2).correct
    assert "off by a factor" in capsys.readouterr().out


def test_option_predictions_ignore_case_and_spaces():
    course.predict("t.opt", "Exactly  0", options=["exactly 0", "about 1"])
    assert course.check_prediction("t.opt", "exactly 0").correct is True
    assert course.check_prediction("t.opt", "about 1").correct is False
    with pytest.raises(ValueError, match="not one of the options"):
        course.check_prediction("t.opt", "something else")


def test_no_guess_does_not_reveal_or_fail(capsys):
    course.predict("t.none", None, factor=2)
    printed = capsys.readouterr().out
    assert "no prediction yet" in printed
    verdict = course.check_prediction("t.none", 5.0)
    assert verdict.correct is None and "you made no prediction" in verdict.message
    assert course.scoreboard() == (0, 0, 1)


def test_bad_predictions_say_what_to_fix():
    with pytest.raises(ValueError, match="not one of the options"):
        course.predict("t.bad", "maybe", options=["yes", "no"])
    with pytest.raises(ValueError, match="exactly one of"):
        course.predict("t.bad", 1.0)
    with pytest.raises(ValueError, match="not both"):
        course.predict("t.bad", "yes", options=["yes"], tolerance=1)
    with pytest.raises(TypeError, match="write a number"):
        course.predict("t.bad", "3", tolerance=1)
    with pytest.raises(KeyError, match="no prediction 't.never'"):
        course.check_prediction("t.never", 1)


def test_scoreboard_counts_right_answers():
    course.predict("a", 1.0, tolerance=0.1)
    course.predict("b", 1.0, tolerance=0.1)
    course.check_prediction("a", 1.05)
    course.check_prediction("b", 3.0)
    assert course.scoreboard() == (1, 2, 2)


@pytest.mark.parametrize("exercise_id", sorted(course.EXERCISES))
def test_every_worked_solution_passes_its_own_checker(exercise_id):
    verdict = course.check_exercise(exercise_id, course.solution_answer(exercise_id))
    assert verdict.correct is True, verdict.message


WRONG = {
    "02.1": lambda model: None,                                  # changes nothing
    "03.1": lambda x, w: x[:, : w.shape[0]],                     # right shape, wrong values
    "04.1": 9.0,                                                 # the parameter ratio of one layer, not the MACs
    "04.2": lambda block, x: 0.001,                              # never runs backward
    "05.1": lambda model, x, y: 1.0,
    "06.1": 11_689_512,                                          # ResNet-18 for 1000 classes
    "07.1": lambda step: 0.1,                                    # no warm-up, no steps
    "08.1": 147_456,                                             # the ungrouped count
    "09.1": lambda n, k: 2 ** k,
    "10.1": lambda f, x, dout: (dout, dout),                     # forgets the ReLU mask
    "01.1": 500.0,                                               # 64,000 / 128
    "11.1": 2560,                                                # forgets the BN's γ and β
    "12.1": lambda n: 9 * 16 * 16 * 6 * n,                       # counts the first stage only
    "13.1": 1 - 1000 * 0.1 * 5e-4 - 0.01,
}


@pytest.mark.parametrize("exercise_id", sorted(WRONG))
def test_wrong_answers_are_not_accepted(exercise_id):
    verdict = course.check_exercise(exercise_id, WRONG[exercise_id])
    assert verdict.correct is False, verdict.message


def test_every_builtin_exercise_has_a_wrong_answer_test():
    assert sorted(WRONG) == sorted(k for k in course.EXERCISES if not k.startswith("t."))


def test_not_attempted_offers_the_solution_without_grading(capsys):
    verdict = course.check_exercise("09.1", None)
    assert verdict.correct is None
    assert "course.solution('09.1')" in capsys.readouterr().out          # a script shows the hint only
    assert "math.comb" in course.solution("09.1")


def test_an_answer_that_raises_is_wrong_not_a_crash():
    def broken(n, k):
        raise RuntimeError("oops")

    verdict = course.check_exercise("09.1", broken)
    assert verdict.correct is False and "RuntimeError: oops" in verdict.message


def test_a_tutorial_can_register_its_own_exercise():
    course.Exercise("t.1", "double it", lambda f: (f(2) == 4, "f(2) must be 4"), "answer = lambda x: 2 * x").register()
    try:
        assert course.check_exercise("t.1", course.solution_answer("t.1")).correct
        assert not course.check_exercise("t.1", lambda x: x).correct
    finally:
        del course.EXERCISES["t.1"]
    with pytest.raises(KeyError, match="no exercise 't.1'"):
        course.check_exercise("t.1", 1)


@pytest.mark.parametrize("env, argv_quick, quick, expected", [
    ("", False, None, False), ("1", False, None, True), ("true", False, None, True), ("0", False, None, False),
    ("", True, None, True), ("1", False, False, False), ("", False, True, True),
])
def test_quick_mode_order(monkeypatch, env, argv_quick, quick, expected):
    monkeypatch.setenv("TINYRESNET_QUICK", env)
    assert course.quick_mode(quick, argv_quick) is expected


def test_solutions_render_collapsed_in_a_notebook(monkeypatch):
    shown = []
    import IPython.display

    monkeypatch.setattr(course.display, "in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    course.check_exercise("08.1", None)
    html = shown[0].data
    assert html.startswith("<details><summary>Solution 08.1") and "<details open" not in html
    assert "groups" in html
