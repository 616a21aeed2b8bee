"""``tinyresnet assignment``: release a student copy, check one's own work, grade submissions.

    tinyresnet assignment list
    tinyresnet assignment release OUT_DIR [--exercises ID ...]
    tinyresnet assignment check [DIR] [--exercises ID ...] [--timeout S] [--json]
    tinyresnet assignment grade SUBMISSION [SUBMISSION ...] [--exercises ID ...] [--config COURSE_FILE]
                                [--gradebook CSV] [--feedback DIR] [--timeout S] [--json]

docs/teaching.md walks through a whole assignment.
"""

import argparse
import json
import math
import sys


def seconds(text):
    """An argparse ``type``: a time limit in seconds, positive and finite."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive, finite number of seconds, got {text}")
    return value


def add_arguments(parser):
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="the exercises marked in this copy's source, with points and places")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")

    rel = actions.add_parser("release", help="write a student copy with the solution regions removed")
    rel.add_argument("out_dir", metavar="OUT_DIR", help="a new (or empty) folder for the student copy")
    rel.add_argument("--exercises", nargs="+", metavar="ID",
                     help="the exercises to remove (default: all); the others keep their solutions")

    chk = actions.add_parser("check", help="run the visible checks on a working copy (for students)")
    chk.add_argument("dir", metavar="DIR", nargs="?", default=".",
                     help="the copy: the folder holding its tinyresnet package (default: the current folder)")
    chk.add_argument("--exercises", nargs="+", metavar="ID", help="only these exercises")
    chk.add_argument("--timeout", type=seconds, default=60.0, metavar="S", help="seconds per exercise (default 60)")
    chk.add_argument("--json", action="store_true", help="print the report as JSON")

    grd = actions.add_parser("grade", help="grade student copies (visible and hidden checks, in isolation)")
    grd.add_argument("submissions", metavar="SUBMISSION", nargs="+",
                     help="a student's copy (the folder holding its tinyresnet package, or one folder down) or a "
                          ".zip / .tar / .tar.gz of it; the student's name is its name without the extension")
    grd.add_argument("--exercises", nargs="+", metavar="ID",
                     help="grade only these (pass the list you released; default: every marked exercise)")
    grd.add_argument("--config", metavar="COURSE_FILE",
                     help='a .json or .toml course file: {"exercises": [ID, ...], "points": {ID: points}}')
    grd.add_argument("--gradebook", metavar="CSV",
                     help="write one row per student: the points per exercise, total, max_total, integrity, error")
    grd.add_argument("--feedback", metavar="DIR",
                     help="write DIR/<student>.md: the visible cases in full, the hidden ones as pass or fail")
    grd.add_argument("--timeout", type=seconds, default=60.0, metavar="S", help="seconds per exercise (default 60)")
    grd.add_argument("--json", action="store_true",
                     help="print the report as JSON (a list when several copies are graded)")


def run(args):
    from ..assignment import GradingError, MarkerError, ReleaseError, check, format_report, release
    from ..assignment.grade import report_json
    try:
        if args.action == "list":
            return _list(args)
        if args.action == "release":
            summary = release(args.out_dir, exercises=args.exercises)
            kept = f"; kept with their solutions: {', '.join(summary['kept'])}" if summary["kept"] else ""
            print(f"wrote {summary['out_dir']}: {len(summary['exercises'])} exercises, "
                  f"{summary['max_points']} points{kept}")
            print(f"handout: {summary['out_dir']}/HANDOUT.md")
            print(f"grade the submissions with: {summary['grade_with']}")
            return 0
        if args.action == "check":
            report = check(args.dir, exercises=args.exercises, timeout=args.timeout)
            text = report_json(report) if args.json else format_report(report, False)
            print(text)
            return 0 if report["passed"] == report["total"] else 1
        return _grade(args)
    except (GradingError, MarkerError, ReleaseError, FileNotFoundError) as e:
        print(f"tinyresnet assignment {args.action}: {e}", file=sys.stderr)
        return 2


def _selection(args):
    """The exercises to grade and their points: from --exercises and the course file (--config)."""
    from ..assignment.grade import GradingError, select_exercises
    from ..assignment.gradebook import load_config, valid_exercises
    valid = valid_exercises()
    config = load_config(args.config, valid) if args.config else {"exercises": None, "points": {}}
    if args.exercises is not None and config["exercises"] is not None:
        raise GradingError(f"the exercises are given twice, by --exercises and by {args.config}'s \"exercises\"; "
                           f"keep one")
    requested = args.exercises if args.exercises is not None else config["exercises"]
    return select_exercises(requested, valid, "the instructor's copy"), config["points"]


def _grade(args):
    from ..assignment.grade import format_report, report_json
    from ..assignment.gradebook import grade_submissions, write_feedback, write_gradebook
    exercises, points = _selection(args)
    summary = bool(args.gradebook or args.feedback)

    def progress(r):
        if r["error"]:
            print(f"{r['student']}: not graded: {r['error']}", file=sys.stderr)
        elif summary and not args.json:
            print(f"{r['student']}: {r['report']['total_points']:g} / {r['report']['max_points']:g}")

    results = grade_submissions(args.submissions, exercises=exercises, points=points, timeout=args.timeout,
                                progress=progress)
    if args.gradebook:
        print(f"gradebook: {write_gradebook(args.gradebook, results, exercises, points)}", file=sys.stderr)
    if args.feedback:
        write_feedback(args.feedback, results)
        print(f"feedback: {args.feedback}/<student>.md ({len(results)} files)", file=sys.stderr)
    graded = [r for r in results if r["report"] is not None]
    if args.json:
        items = [dict(r["report"], student=r["student"]) if r["report"] else
                 {"student": r["student"], "submission": r["submission"], "error": r["error"]} for r in results]
        print(report_json(items[0] if len(items) == 1 else items))
    elif not summary:
        print("\n\n".join(format_report(r["report"]) for r in graded))
    if not graded:
        return 2
    return 0 if len(graded) == len(results) else 1


def _list(args):
    from pathlib import Path

    import tinyresnet

    from ..assignment import EXERCISES, find_regions
    regions = find_regions(Path(tinyresnet.__file__).resolve().parent)
    rows = [{"exercise": ex, "title": e.title, "points": e.points, "where": regions[ex].location}
            for ex, e in EXERCISES.items() if ex in regions]
    unknown = sorted(set(regions) - set(EXERCISES))
    if args.json:
        print(json.dumps({"exercises": rows, "unknown": unknown}, indent=2, ensure_ascii=False))
    else:
        for r in rows:
            unit = "point " if r["points"] == 1 else "points"
            print(f"{r['exercise']:<20} {r['points']:>2} {unit}  {r['where']:<36} {r['title']}")
        print(f"{'total':<20} {sum(r['points'] for r in rows):>2} points")
        for ex in unknown:
            print(f"warning: {ex} ({regions[ex].location}) is marked but has no entry in "
                  f"tinyresnet/assignment/exercises.py", file=sys.stderr)
    return 0
