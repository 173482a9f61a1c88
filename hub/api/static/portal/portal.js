/* The dataset page's enhancements (the page works without them): copy buttons on the code examples, and
   the preview (table, chart picker) reloaded in place instead of the whole page. No library. */
(function () {
  "use strict";

  function setupCopy(root) {
    root.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
      if (!navigator.clipboard) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        var code = document.getElementById(button.getAttribute("data-copy"));
        if (!code) return;
        navigator.clipboard.writeText(code.textContent).then(function () {
          var label = button.firstChild.nodeValue;
          button.firstChild.nodeValue = button.getAttribute("data-done");
          setTimeout(function () { button.firstChild.nodeValue = label; }, 2000);
        }, function () { /* no permission: the reader selects the text */ });
      });
    });
  }

  function swap(url, push) {
    var section = document.getElementById("preview");
    if (!section || !window.fetch || !window.DOMParser) { window.location.href = url; return; }
    section.setAttribute("aria-busy", "true");
    fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("preview");
        if (!fresh) throw new Error("no preview");
        section.replaceWith(fresh);
        if (push) history.pushState({ preview: true }, "", url);
        var target = fresh.querySelector("caption") || fresh.querySelector("h2");
        if (target) { target.setAttribute("tabindex", "-1"); target.focus({ preventScroll: true }); }
        document.dispatchEvent(new CustomEvent("portal:preview", { detail: { section: fresh } }));
      })
      .catch(function () { window.location.href = url; });
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("#preview a[href]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    var url = new URL(link.href, window.location.href);
    if (url.pathname !== window.location.pathname) return;
    event.preventDefault();
    swap(url.href, true);
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.closest || !form.closest("#preview") || (form.method || "get").toLowerCase() !== "get") return;
    event.preventDefault();
    var url = new URL(form.action, window.location.href);
    url.search = new URLSearchParams(new FormData(form)).toString();
    swap(url.href, true);
  });

  document.addEventListener("change", function (event) {
    var select = event.target;
    if (select.matches && select.matches("#chart select")) select.form.requestSubmit();
  });

  window.addEventListener("popstate", function () { swap(window.location.href, false); });
  setupCopy(document);
})();
