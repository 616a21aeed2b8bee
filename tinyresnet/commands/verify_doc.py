"""``tinyresnet verify-doc``: recompute every worked number of the ResNet document with the engine.

By default it prints the document's wrong numbers grouped by root cause (one paragraph each, the
rows it explains, the tutorial that explores it) and a closing count. Exits 0 whenever it ran: a ✗
is a finding about the document, not a failure of the command.

    tinyresnet verify-doc                          # the mistakes, each with the rows it explains
    tinyresnet verify-doc --rows                   # one row per claim; the reason under every ✗
    tinyresnet verify-doc --mismatches --notes     # only the ✗ rows
    tinyresnet verify-doc --json rows.json         # claims, root causes, conceptual errata (--json - for stdout)
    tinyresnet verify-doc --errata docs/errata.md  # regenerate the errata page
    tinyresnet verify-doc --worksheet sheet.md     # the "find the errors" exercise (.json for JSON)
    tinyresnet verify-doc --grade sheet.md         # grade a filled-in worksheet
"""

import os
import sys


def add_arguments(parser):
    parser.add_argument("--rows", action="store_true", help="one row per claim instead of the grouped view")
    parser.add_argument("--json", metavar="PATH",
                        help="write the claims (each with its root cause), the root causes and the conceptual "
                             "errata as JSON; '-' writes it to stdout instead of the table")
    parser.add_argument("--errata", metavar="PATH", help="write the errata page (Markdown) listing every mismatch")
    parser.add_argument("--mismatches", action="store_true", help="rows: show only the claims the engine disagrees "
                                                                  "with (implies --rows)")
    parser.add_argument("--notes", action="store_true", help="rows: the note under every row, not only under ✗ "
                                                             "(implies --rows)")
    parser.add_argument("--worksheet", metavar="PATH",
                        help="write the 'find the errors' exercise: every claim without the engine's value, to "
                             "mark right or wrong (Markdown, or JSON if PATH ends in .json)")
    parser.add_argument("--sections", nargs="+", metavar="§",
                        help="with --worksheet: only these sections of the document, e.g. --sections 3.5 8")
    parser.add_argument("--grade", metavar="PATH", help="grade a filled-in worksheet (Markdown or JSON): each "
                                                        "claim correct or not, the score, the engine's values")


def run(args):
    from ..docverify import errata, grouped, table, to_json, verify_document
    from ..docverify import worksheet as ws

    if args.sections and not args.worksheet:
        raise SystemExit("verify-doc: --sections chooses the claims of a worksheet; add --worksheet PATH")
    for path in (args.json, args.errata, args.worksheet):
        if path and path != "-":
            _check_folder(path)
    if args.grade and not os.path.isfile(args.grade):
        raise SystemExit(f"verify-doc: cannot grade {args.grade}: no such file; write a worksheet first with "
                         f"`tinyresnet verify-doc --worksheet {args.grade}` and fill it in")
    claims = verify_document()
    if args.worksheet or args.grade:
        return _exercise(args, claims, ws)
    if args.json == "-":
        sys.stdout.write(to_json(claims))
    elif args.rows or args.mismatches or args.notes:
        print(table(claims, only_mismatches=args.mismatches, notes=args.notes), flush=True)
    else:
        print(grouped(claims), flush=True)
    if args.json and args.json != "-":
        _write(args.json, to_json(claims))
    if args.errata:
        _write(args.errata, errata(claims))
    return 0


def _exercise(args, claims, ws):
    if args.worksheet:
        try:
            n = ws.write_worksheet(claims, args.worksheet, args.sections)
        except ws.WorksheetError as e:
            raise SystemExit(f"verify-doc --worksheet: {e}") from None
        print(f"wrote {args.worksheet}: {n} claims to mark right or wrong; grade it with "
              f"`tinyresnet verify-doc --grade {args.worksheet}`", file=sys.stderr)
    if args.grade:
        try:
            marks = ws.grade(args.grade, claims)
        except ws.WorksheetError as e:
            print(f"verify-doc --grade: cannot read {args.grade}:\n{e}", file=sys.stderr)
            return 2
        print(ws.report(marks), flush=True)
    return 0


def _check_folder(path):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise SystemExit(f"verify-doc: cannot write {path}: the folder {folder} does not exist; create it or "
                         f"choose another path")


def _write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {path}", file=sys.stderr)
