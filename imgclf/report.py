"""One self-contained HTML page of a run: metrics, params and every plot, images embedded,
so it opens offline and can be mailed as one file."""
import base64
import html
import json


def _table(rows):
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows)
    return f"<table>{cells}</table>"


def _flat(values, prefix=""):
    for key, value in values.items():
        if isinstance(value, dict) and value:
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield prefix + key, json.dumps(value) if isinstance(value, (list, dict)) else value


def html_report(metrics, params, pngs):
    """metrics: {file: {key: value}}, params: nested dict, pngs: {title: path}."""
    sections = ["<h1>Image classifier: run report</h1>"]
    for name, values in metrics.items():
        rounded = [(k, f"{v:.4f}" if isinstance(v, float) else v) for k, v in values.items()]
        sections.append(f"<h2>{html.escape(name)}</h2>{_table(rounded)}")
    for title, path in pngs.items():
        with open(path, "rb") as f:
            data = base64.b64encode(f.read()).decode()
        sections.append(f"<h2>{html.escape(title)}</h2><img src=\"data:image/png;base64,{data}\">")
    sections.append(f"<h2>params</h2>{_table(_flat(params))}")
    style = ("body{font-family:sans-serif;max-width:1400px;margin:auto}img{max-width:100%}"
             "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:2px 8px;"
             "text-align:left}")
    head = f"<head><meta charset=\"utf-8\"><style>{style}</style></head>"
    return f"<!DOCTYPE html><html>{head}<body>{''.join(sections)}</body></html>\n"
