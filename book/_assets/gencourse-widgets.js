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

// The widget bundle typesets labels with the MathJax 2 API (MathJax.Hub.Queue); the book
// loads MathJax 3, which has no Hub. Give it a minimal Hub that forwards to MathJax 3.
(function () {
  function shim() {
    var mj = window.MathJax;
    if (mj && !mj.Hub) {
      mj.Hub = {
        Queue: function (job) {
          var el = job && job[2];
          if (mj.typesetPromise) mj.typesetPromise(el ? [el] : undefined).catch(function () {});
        },
      };
    }
  }
  shim();
  document.addEventListener("DOMContentLoaded", shim);
})();
