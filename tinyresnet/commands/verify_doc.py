"""``tinyresnet verify-doc``: recompute every worked number of the ResNet document with the engine.

Prints one row per claim (section, claim, the document's value, the engine's value, ✓ or ✗)
and a closing count. Exits 0 whenever it ran: a ✗ is a finding about the document, not a
failure of the command.

    tinyresnet verify-doc                          # the table; the reason under every ✗
    tinyresnet verify-doc --mismatches --notes     # only the ✗ rows
    tinyresnet verify-doc --json rows.json         # the rows as JSON (--json - for stdout)
    tinyresnet verify-doc --errata docs/errata.md  # regenerate the errata page
"""

import os
import sys


def add_arguments(parser):
    parser.add_argument("--json", metavar="PATH",
                        help="write the rows as a JSON list (fields id, section, claim, document, engine, match, "
                             "note); '-' writes it to stdout instead of the table")
    parser.add_argument("--errata", metavar="PATH", help="write the errata page (Markdown) listing every mismatch")
    parser.add_argument("--mismatches", action="store_true", help="show only the claims the engine disagrees with")
    parser.add_argument("--notes", action="store_true", help="show the note under every row, not only under ✗")


def run(args):
    from ..docverify import errata, table, to_json, verify_document

    for path in (args.json, args.errata):
        if path and path != "-":
            _check_folder(path)
    claims = verify_document()
    if args.json == "-":
        sys.stdout.write(to_json(claims))
    else:
        print(table(claims, only_mismatches=args.mismatches, notes=args.notes), flush=True)
    if args.json and args.json != "-":
        _write(args.json, to_json(claims))
    if args.errata:
        _write(args.errata, errata(claims))
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
