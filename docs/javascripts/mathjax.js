// MathJax configuration for pymdownx.arithmatex (generic mode) and the rendered notebooks.
//
// MathJax itself (tex-svg-full.js, every TeX extension and the SVG glyphs in one file) is
// fetched by docs/build.sh into javascripts/vendor/mathjax/, so the site needs no network.
//
// How MathJax picks what to typeset: an element whose class matches processHtmlClass is
// typeset with its descendants; one whose class matches ignoreHtmlClass is skipped with its
// descendants (unless they match processHtmlClass); an element with no class inherits its
// parent's choice. ".+" ignores every element that has a class, so only the arithmatex spans
// and the notebooks' markdown cells, with their plain <p>, <li>, <td> children, are typeset.
// (".*|" would also match the empty class and skip those plain children.)
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".+",
    processHtmlClass: "arithmatex|jp-RenderedMarkdown|jp-MarkdownOutput",
  },
  svg: {
    fontCache: "global",
  },
};

document$.subscribe(() => {
  MathJax.startup.output.clearCache();
  MathJax.typesetClear();
  MathJax.texReset();
  MathJax.typesetPromise();
});
