"""Plain-text tables for ``summary`` and ``trace``: columns padded to their widest cell, rules above and below."""


def text_table(header, rows, right=0):
    """The lines of a table: a rule, the header, a rule, one line per row, a rule. Cells are ``str``'d and
    left-aligned, the last ``right`` columns right-aligned (numbers); columns are two spaces apart."""
    header, rows = [str(c) for c in header], [[str(c) for c in row] for row in rows]
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    split = len(header) - right

    def line(cells):
        left = [c.ljust(w) for c, w in zip(cells[:split], widths[:split])]
        return "  ".join(left + [c.rjust(w) for c, w in zip(cells[split:], widths[split:])]).rstrip()

    rule = "-" * len(line(header))
    return [rule, line(header), rule, *(line(r) for r in rows), rule]
