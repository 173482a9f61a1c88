// The SQL console (/query): every part works without this script, which only enhances it.
// - Ctrl+Enter (or Cmd+Enter) in the editor runs the query;
// - the "insert" buttons of the tables (and a click on a column's name) put the name at the cursor;
// - while a query job is queued or running, its progress is followed in place (GET /query/jobs/<id>/status)
//   and the page reloads once it ends, showing the result.
(function () {
  "use strict";
  var form = document.getElementById("editor");
  var sql = document.getElementById("sql");

  if (form && sql) {
    sql.addEventListener("keydown", function (event) {
      if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
        event.preventDefault();
        if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
      }
    });
  }

  // until the editor has had the focus, its caret is at the start: a name then goes at the end
  var touched = false;
  if (sql) { sql.addEventListener("focus", function () { touched = true; }); }

  function insert(text) {
    if (!sql) { return; }
    var start = touched ? sql.selectionStart : sql.value.length;
    var end = touched ? sql.selectionEnd : sql.value.length;
    var value = sql.value;
    var before = value.slice(0, start);
    var pad = before && !/\s$/.test(before) ? " " : "";
    sql.value = before + pad + text + value.slice(end);
    var at = start + pad.length + text.length;
    sql.focus();
    sql.setSelectionRange(at, at);
  }

  document.querySelectorAll("button[data-insert]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { insert(button.getAttribute("data-insert")); });
  });
  document.querySelectorAll("code[data-insert]").forEach(function (code) {
    code.classList.add("clickable");
    code.addEventListener("click", function () { insert(code.getAttribute("data-insert")); });
  });

  var job = document.getElementById("job");
  if (!job) { return; }
  var status = job.getAttribute("data-status");
  if (status !== "queued" && status !== "running") { return; }
  var id = job.getAttribute("data-job");
  var progress = document.getElementById("job-progress");
  var english = document.documentElement.lang === "en";
  var names = english
    ? {queued: "Queued", running: "Running"}
    : {queued: "Đang chờ", running: "Đang chạy"};
  var rowsWord = english ? "rows" : "dòng";
  var delay = 300;

  function poll() {
    fetch("/query/jobs/" + encodeURIComponent(id) + "/status", {credentials: "same-origin", cache: "no-store"})
      .then(function (response) {
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.json();
      })
      .then(function (state) {
        if (state.status !== "queued" && state.status !== "running") {
          window.location.replace("/query/jobs/" + encodeURIComponent(id));
          return;
        }
        if (progress) {
          progress.textContent = (names[state.status] || state.status) + " · " +
            Number(state.rows).toLocaleString() + " " + rowsWord + " · " + Number(state.seconds).toFixed(1) + " s";
        }
        delay = Math.min(2000, delay * 1.5);
        window.setTimeout(poll, delay);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, delay);
})();
