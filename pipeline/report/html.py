"""Small helpers for self-contained (offline) HTML pages: images and audio inline."""
from __future__ import annotations

import base64
import html
import io

import numpy as np

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1200px;color:#222}
h1{font-size:1.6em} h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:1.6em}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:8px} .card{border:1px solid #ddd;border-radius:6px;padding:6px;font-size:.8em}
.muted{color:#777;font-size:.9em} audio{width:170px;height:30px} img{image-rendering:auto} .bad{color:#b00} .good{color:#070}
"""


def esc(x) -> str:
    return html.escape(str(x))


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>")


def png_tag(png: bytes, alt: str = "", width: int | None = None) -> str:
    w = f" width='{width}'" if width else ""
    return f"<img alt='{esc(alt)}'{w} src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def array_png(img: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def audio_tag(wav: bytes) -> str:
    return f"<audio controls preload='none' src='data:audio/wav;base64,{base64.b64encode(wav).decode()}'></audio>"


def table(rows: list[dict], columns: list[str] | None = None, fmt: str = "{:.3f}") -> str:
    if not rows:
        return "<p class='muted'>(none)</p>"
    columns = columns or list(rows[0])
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = ""
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            cells.append(f"<td>{esc(fmt.format(v) if isinstance(v, float) else v)}</td>")
        body += "<tr>" + "".join(cells) + "</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"
