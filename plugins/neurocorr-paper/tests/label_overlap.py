"""Label overlap in a drawn figure, shared by the scatter and the reproduce-figure tests."""

from __future__ import annotations


def label_clashes(fig) -> list[str]:
    """Pairs of text labels of each axes whose boxes (matplotlib's text extents, in pixels)
    overlap, and labels that cover another labelled point."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    clashes = []
    for ax in fig.axes:
        notes = [t for t in ax.texts if t.get_text()]
        boxes = [Text.get_window_extent(t, renderer) for t in notes]  # the text, not its leader line
        points = [ax.transData.transform(t.xy) if hasattr(t, "xy") else None for t in notes]
        for i, a in enumerate(boxes):
            for j, b in enumerate(boxes[i + 1:], i + 1):
                if a.overlaps(b) and a.intersection(a, b).width > 0.5 and a.intersection(a, b).height > 0.5:
                    clashes.append(f"{notes[i].get_text()} overlaps {notes[j].get_text()}")
            for j, point in enumerate(points):
                if j != i and point is not None and a.contains(*point):
                    clashes.append(f"{notes[i].get_text()} covers the point of {notes[j].get_text()}")
    return clashes
