"""Small fixes for a book that must work offline and without console errors.

* sphinx-thebe and sphinx-togglebutton (added by Jupyter Book 1) register their
  inline configuration scripts twice (once with filename None, once with ''),
  so every page logs "Identifier 'THEBE_JS_URL' has already been declared";
  keep the first copy of each script.
"""


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for s in scripts:
        attrs = getattr(s, "attributes", {}) or {}
        key = (getattr(s, "filename", str(s)) or "", tuple(sorted((k, str(v)) for k, v in attrs.items())))
        if key not in seen:
            seen.add(key)
            kept.append(s)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
