// Loaded just before require.js and the ipywidgets bundle (see nb_ipywidgets_js in _config.yml).
// The bundle resolves its icon fonts relative to the AMD module's URL, which by default is a
// path relative to the page ("@jupyter-widgets/html-manager/dist/..."). Point that module path,
// and the bundle's public path, at this folder (_static/), where `make vendor` put the fonts,
// so every page works offline and from file://, whatever its folder.
(function () {
  var here = new URL(".", document.currentScript.src).href;
  window.__jupyter_widgets_assets_path__ = here;
  var paths = { "@jupyter-widgets/html-manager/dist": here.replace(/\/$/, "") };
  ["base", "base7", "controls", "controls7", "html-manager"].forEach(function (name) {
    paths["@jupyter-widgets/" + name] = here + "jupyter-widgets-" + name;
  });
  window.require = { paths: paths };
})();
