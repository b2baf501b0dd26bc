"""The page around the report: inline CSS, and one small inline script that sorts and filters
tables (no external resources; the tables read the same with scripts off).

The script only moves rows, hides them and creates a filter box; it reads cells with
``textContent`` and never parses data as HTML.
"""

from __future__ import annotations

from harness.report.tables import esc

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; padding: 0 1.5em; color: #222;
       max-width: 90em; line-height: 1.4; }
h1 { font-size: 1.5em; overflow-wrap: anywhere; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05em; margin-top: 1.5em; overflow-wrap: anywhere; }
p, li, dd { overflow-wrap: anywhere; }
.box { max-width: 100%; overflow-x: auto; margin: 0.3em 0 1.5em; }
table { border-collapse: collapse; font-size: 0.85em; }
caption { text-align: left; font-weight: 600; padding: 0.2em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td { overflow-wrap: anywhere; max-width: 30em; }
td:not(.n):not(.t) { min-width: 6em; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.t { white-space: nowrap; font-variant-numeric: tabular-nums; }
th.sortable { cursor: pointer; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
tr.flag td { background: #fde8e8; }
.warn { color: #8a4b00; }
.note { background: #fff6dc; border-left: 4px solid #e0a800; padding: 0.5em 0.8em; }
img { max-width: 100%; height: auto; }
.box img { min-width: 40em; }
audio { width: 16em; max-width: 100%; }
input.filter { font: inherit; padding: 0.2em 0.4em; margin: 0.2em 0; width: 20em; max-width: 100%;
               box-sizing: border-box; }
ul.legend { list-style: none; padding: 0; }
ul.legend li { margin: 0.2em 0; }
.swatch { display: inline-block; width: 1.2em; height: 0.8em; margin-right: 0.4em; vertical-align: middle; }
@media (max-width: 600px) {
  body { padding: 0 0.6em; margin: 0.8em auto; }
  table { font-size: 0.8em; }
}
"""

SCRIPT = """
(function () {
  "use strict";
  var each = function (list, f) { Array.prototype.forEach.call(list, f); };
  function key(row, i, numeric) {
    var c = row.cells[i];
    if (numeric) {
      var v = c ? c.getAttribute("data-v") : null;
      return v === null || v === "" ? NaN : Number(v);
    }
    return c ? c.textContent.toLowerCase() : "";
  }
  each(document.querySelectorAll("table.data"), function (table) {
    var body = table.tBodies[0], heads = table.tHead.rows[0].cells;
    each(heads, function (th, i) {
      var numeric = ["text", "word", "list", "bool"].indexOf(th.getAttribute("data-f")) < 0;
      function sort() {
        var up = th.getAttribute("aria-sort") !== "ascending";
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a, i, numeric), y = key(b, i, numeric);
          if (!numeric) { return up ? x.localeCompare(y) : y.localeCompare(x); }
          if (isNaN(x)) { return isNaN(y) ? 0 : 1; }
          if (isNaN(y)) { return -1; }
          return up ? x - y : y - x;
        });
        each(heads, function (h) { h.setAttribute("aria-sort", "none"); });
        th.setAttribute("aria-sort", up ? "ascending" : "descending");
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.tabIndex = 0;
      th.className = "sortable";
      th.title = "sort by this column";
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
      });
    });
    var input = document.createElement("input");
    input.type = "search";
    input.className = "filter";
    input.placeholder = "filter rows";
    input.setAttribute("aria-label", "filter the rows of the next table");
    input.addEventListener("input", function () {
      var q = input.value.toLowerCase();
      each(body.rows, function (r) { r.hidden = q !== "" && r.textContent.toLowerCase().indexOf(q) < 0; });
    });
    var box = table.parentNode;
    box.parentNode.insertBefore(input, box);
  });
})();
"""

SCRIPT_BLOCK = f"<script>{SCRIPT}</script>"


def page(title: str, body: str) -> str:
    """The whole HTML document around ``body`` (already HTML); ``title`` is text."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>\n{body}\n{SCRIPT_BLOCK}\n</body></html>\n"
    )
