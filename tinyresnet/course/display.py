"""Show things the right way for where the code runs: rich output in a notebook, plain text in a script."""

import html
import sys


def in_notebook():
    """True inside a Jupyter kernel (an executed notebook or Jupyter itself), False in a plain script."""
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    ip = shell.get_ipython()
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def show_figure(fig, dpi=100):
    """Display a matplotlib figure inline as a PNG when in a notebook (a no-op in a script).

    The figure is rendered here rather than through the inline backend, so a Figure made without pyplot
    (``viz.draw_graph``) shows too, whatever backend is active.
    """
    if in_notebook():
        import io

        from IPython.display import Image, display

        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        display(Image(data=buffer.getvalue(), format="png"))


def show_details(summary, body, text=None):
    """A collapsed ``<details>`` block in a notebook (``body`` shown as code when opened); ``text`` in a script.

    The block is closed by default, so a rendered page shows only ``summary`` until the reader clicks.
    """
    if in_notebook():
        from IPython.display import HTML, display

        display(HTML(f"<details><summary>{html.escape(summary)}</summary>"
                     f"<pre><code>{html.escape(body)}</code></pre></details>"))
    elif text is not None:
        print(text)
