"""The report's shape, shared by the HTML and the text templates: sections of blocks.

A section is a titled list of blocks; a block is a paragraph, a table or a chart. A chart
always carries its one-line summary, which the HTML shows under the image and the text part
shows instead of it; a chart that could not be drawn keeps only its summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ragmon.alerts.report.model import Image


@dataclass
class Para:
    text: str
    #: "", "good", "bad" or "muted": the HTML colours it; the text part ignores it.
    tone: str = ""
    kind: str = "para"


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    #: Columns the HTML keeps on one line (dates, numbers).
    nowrap: tuple[int, ...] = ()
    kind: str = "table"


@dataclass
class Chart:
    summary: str
    image: Image | None = None
    kind: str = "chart"


Block = Para | Table | Chart


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    #: An anchor for the HTML and the id tests look for.
    slug: str = ""

    def add(self, *blocks: Block) -> Section:
        self.blocks.extend(blocks)
        return self


__all__ = ["Block", "Chart", "Para", "Section", "Table"]
