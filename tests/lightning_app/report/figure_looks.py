"""What a reader sees of a drawn figure, for the figure tests: a series' look and a text's size."""
from matplotlib.colors import to_hex
from matplotlib.lines import Line2D


def look(artist) -> dict:
    """A line's or a band's colour (hex, without alpha), alpha, width and legend label (None: not in the
    legend); a line's style, marker, marker size and marker edge width besides."""
    label = artist.get_label()
    seen = {"label": None if label.startswith("_") else label, "alpha": artist.get_alpha()}
    if isinstance(artist, Line2D):
        return {**seen, "colour": to_hex(artist.get_color()), "width": artist.get_linewidth(),
                "style": artist.get_linestyle(), "marker": artist.get_marker(), "size": artist.get_markersize(),
                "edge": artist.get_markeredgewidth()}
    return {**seen, "colour": to_hex(artist.get_facecolor()[0], keep_alpha=False),
            "width": float(artist.get_linewidth()[0])}


def text_of(text) -> tuple[str, float]:
    """A title's or label's text and font size."""
    return text.get_text(), text.get_fontsize()
