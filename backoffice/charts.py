"""Charts drawn on the server as inline SVG: no JavaScript library and no CDN (none is reachable in production)."""

from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    title: str = ""


def bar_chart_svg(bars: list[Bar], *, title: str, height: int = 180, bar_width: int = 14, unit: str = "") -> SafeString:
    """A bar chart; every label and value is HTML-escaped, so data can never inject markup."""
    if not bars:
        return format_html('<p class="chart-empty">{}: no data yet.</p>', title)
    top = max(bar.value for bar in bars) or 1
    gap = max(2, bar_width // 4)
    left, bottom, header = 40, 34, 22
    width = max(left + len(bars) * (bar_width + gap) + 10, 320)  # room for the title however few bars
    plot = height - bottom - header
    rects = []
    for index, bar in enumerate(bars):
        h = round(plot * bar.value / top) if bar.value else 0
        x = left + index * (bar_width + gap)
        y = header + plot - h
        rects.append((x, y, bar_width, max(h, 0), bar.title or f"{bar.label}: {bar.value:g}{unit}"))
    body = format_html_join(
        "",
        '<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="#417690"><title>{}</title></rect>',
        rects,
    )
    # Label the first, middle and last bars only: dozens of dates would overlap.
    marks = sorted({0, len(bars) // 2, len(bars) - 1})
    labels = format_html_join(
        "",
        '<text x="{}" y="{}" font-size="10" text-anchor="middle" fill="#666">{}</text>',
        ((left + i * (bar_width + gap) + bar_width // 2, height - bottom + 14, bars[i].label) for i in marks),
    )
    axis = format_html(
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"/>'
        '<text x="{}" y="{}" font-size="10" text-anchor="end" fill="#666">{}</text>'
        '<text x="{}" y="{}" font-size="10" text-anchor="end" fill="#666">0</text>',
        left - 4,
        header + plot,
        width,
        header + plot,
        left - 6,
        header + 8,
        f"{top:g}{unit}",
        left - 6,
        header + plot,
    )
    return format_html(
        '<svg class="chart" role="img" aria-label="{}" width="{}" height="{}" viewBox="0 0 {} {}" '
        'xmlns="http://www.w3.org/2000/svg"><text x="{}" y="14" font-size="12" font-weight="bold">{}</text>{}{}{}</svg>',
        title,
        width,
        height,
        width,
        height,
        left,
        title,
        axis,
        body,
        labels,
    )


def label_fit(text: str, chars: int) -> str:
    """A label cut to `chars` characters with an ellipsis (the full text goes in the tooltip)."""
    return text if len(text) <= chars else text[: chars - 1].rstrip() + "…"


def horizontal_bar_chart_svg(
    bars: list[Bar], *, title: str, label_chars: int = 28, bar_height: int = 16, plot_width: int = 320
) -> SafeString:
    """One row per bar, its label on the left: readable with many bars and long names (a vertical chart's labels
    would overlap). A label longer than `label_chars` is cut with an ellipsis; hovering a row shows the whole of it
    and its value. Every label and value is HTML-escaped."""
    if not bars:
        return format_html('<p class="chart-empty">{}: no data yet.</p>', title)
    top = max(bar.value for bar in bars) or 1
    gap, header = 6, 24
    left = 10 + label_chars * 6  # about 6 px per character at font-size 10
    width = left + plot_width + 60  # room for the value after the longest bar
    height = header + len(bars) * (bar_height + gap) + 4
    rows = []
    for index, bar in enumerate(bars):
        y = header + index * (bar_height + gap)
        length = round(plot_width * bar.value / top) if bar.value else 0
        tooltip = bar.title or f"{bar.label}: {bar.value:g}"
        rows.append(
            (
                tooltip,
                left - 6,
                y + bar_height - 4,
                label_fit(bar.label, label_chars),
                left,
                y,
                max(length, 0),
                bar_height,
                left + length + 4,
                y + bar_height - 4,
                f"{bar.value:g}",
            )
        )
    body = format_html_join(
        "",
        '<g class="row"><title>{}</title>'
        '<text class="label" x="{}" y="{}" font-size="10" text-anchor="end" fill="#333">{}</text>'
        '<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="#417690"/>'
        '<text x="{}" y="{}" font-size="10" fill="#666">{}</text></g>',
        rows,
    )
    return format_html(
        '<svg class="chart" role="img" aria-label="{}" width="{}" height="{}" viewBox="0 0 {} {}" '
        'xmlns="http://www.w3.org/2000/svg"><text x="10" y="14" font-size="12" font-weight="bold">{}</text>{}</svg>',
        title,
        width,
        height,
        width,
        height,
        title,
        body,
    )
